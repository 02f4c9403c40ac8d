"""Known differences between minijax and JAX, each the reason of a strict xfail.

A test marked with one of these fails (as expected) until minijax is fixed; then it
passes, and because the mark is strict, pytest reports that so the mark is removed.
"""

WEAK_REDUCTION = ("minijax: sum, max and mean keep the weak type of a weakly typed input; "
                  "JAX's reductions give a strongly typed result")
FLOAT0_TANGENT = ("minijax: the tangent of a boolean output is an array of bool zeros; JAX "
                  "gives float0 tangents to boolean (and integer) outputs")
WHERE_NONBOOL_TRACER = ("minijax: jnp.where with a traced condition that is not boolean fails "
                        "in select_n; JAX converts the condition to bool (nonzero is true)")
ARRAY_OF_TRACERS = ("minijax: jnp.array/jnp.asarray of a list holding traced values raises "
                    "TypeError; JAX stacks them")
INDEX_OF_TRACER = ("minijax: operator.index (range, indexing) of a tracer raises "
                   "ConcretizationTypeError; JAX raises TracerIntegerConversionError, which "
                   "minijax.errors lacks")
FLOAT_OF_JVP_TRACER = ("minijax: float() of a value under grad or jvp returns its primal; JAX "
                       "raises ConcretizationTypeError for float() of any tracer (bool() and "
                       "int() do use the primal in both)")
ITEM_OF_TRACER = ("minijax: tracers have no .item(), so AttributeError; JAX raises "
                  "ConcretizationTypeError")
VJP_COTANGENT_TREE = ("minijax: a cotangent whose tree structure differs from the output's "
                      "raises TypeError; JAX raises ValueError")
INDEX_OUT_OF_BOUNDS = ("minijax: a static integer index past the end raises IndexError; JAX "
                       "clamps it (x[5] of a length-3 x is x[2])")
BROADCAST_ERROR = ("minijax: a binary operation on shapes that do not broadcast raises "
                   "NumPy's ValueError; JAX raises TypeError")
BROADCAST_TO_ERROR = ("minijax: broadcast_to an incompatible shape raises TypeError; JAX "
                      "raises ValueError")
AXIS_OUT_OF_BOUNDS = ("minijax: a reduction axis out of bounds wraps around (axis % ndim) and "
                      "computes a result; JAX raises ValueError")
UNHASHABLE_STATIC = ("minijax: an unhashable static argument raises TypeError; JAX raises "
                     "ValueError")
TREEDEF_REPR = ("minijax: a PyTreeDef prints a namedtuple or registered node as Name(...); "
                "JAX prints CustomNode(namedtuple[Name], [...]) and CustomNode(Name[aux], [...])")
TREE_MAP_IS_LEAF = "minijax: tree_util.tree_map has no is_leaf argument"
REPR_LONG_LAST_LINE = ("minijax: when the last line of a wrapped array repr is too long for "
                       "the dtype, JAX separates them by six spaces; minijax by one")
JAXPR_EMPTY_BODY = ("minijax: a jaxpr without equations prints 'let in'; JAX prints 'let  in' "
                    "(two spaces)")
JAXPR_CONSTANT_OUTPUT = ("minijax: a Python scalar returned as an output becomes a constvar; "
                         "JAX writes it as a literal, 'in (2.0:f32[],)'")
