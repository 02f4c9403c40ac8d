"""jit: stage a function to a jaxpr once, compile it, and call the compiled code.

JAX compiles jaxprs with XLA.  minijax "compiles" a jaxpr into the source of a
plain Python function whose body is one NumPy call per equation, and ``exec``s
it.  The result has no tracing and no dispatch left in it, which is where jit's
speed comes from; ``jit(f).lower(*args).as_text()`` shows the generated code.

Inside other transformations a jitted function is the primitive ``jit``, whose
parameters carry the staged jaxpr.  Each transformation handles it by
transforming that jaxpr, so the result is again one ``jit`` equation.
"""
from __future__ import annotations

import functools
import keyword
import weakref
from typing import Callable

import numpy as np

from minijax.core import Primitive, Tracer
from minijax.jaxpr import (
    Jaxpr, JaxprEqn, Literal, Var, bind_static_args, cache_per_jaxpr, closure_convert,
    jaxpr_as_fun, pp_jaxpr, shaped_aval, trace_to_jaxpr, _names)
from minijax.jvp import jvp_flat, jvp_rules
from minijax.tree_util import flatten_fun, tree_flatten, tree_unflatten

jit_p = Primitive("jit")
jit_p.multiple_results = True


@jit_p.def_abstract_eval
def _jit_abstract_eval(*in_avals, jaxpr: Jaxpr, name: str):
    if len(in_avals) != len(jaxpr.invars) or any(
            a.shape != v.aval.shape or a.dtype != v.aval.dtype
            for a, v in zip(in_avals, jaxpr.invars)):
        raise TypeError(f"jit-compiled {name} called with arguments of types "
                        f"{[a.str_short() for a in in_avals]}, expected "
                        f"{[a.str_short() for a in jaxpr.in_avals]}")
    return jaxpr.out_avals


@jit_p.def_impl
def _jit_impl(*args, jaxpr: Jaxpr, name: str):
    # Like every impl, this runs inside the evaluation trace's np.errstate.
    return compile_jaxpr(jaxpr, name)(*args)


# ---------------------------------------------------------------------------
# The compiler: jaxpr -> Python source -> function.


@cache_per_jaxpr
def compile_jaxpr(jaxpr: Jaxpr, name: str = "jitted") -> Callable:
    source, namespace = generate_source(split_into_pieces(jaxpr, name), name)
    exec(compile(source, f"<minijax.jit {name}>", "exec"), namespace)
    compiled = namespace[_function_name(name)]
    compiled.source = source
    return compiled


class _Impls:
    """The generated code calls ``impl.<primitive>`` for primitives that are not
    a single NumPy function."""

    def __init__(self):
        self.by_name: dict[str, Callable] = {}

    def __getattr__(self, name):
        try:
            return self.by_name[name]
        except KeyError:
            raise AttributeError(name) from None


def generate_source(jaxpr: Jaxpr, name: str) -> tuple[str, dict]:
    """Python source for ``jaxpr`` and the namespace it runs in.

    The code keeps few large arrays alive, as XLA's buffer assignment does:
    equations whose results are never used are left out, each value is
    deleted right after its last use, and an elementwise NumPy function
    writes its result into an operand that dies there (``out=``) rather than
    into a new array.  Without this a chain of operations on large arrays
    would hold every intermediate until the end, and allocating fresh memory
    for each would cost more than the arithmetic.
    """
    impls = _Impls()
    namespace = {"np": np, "impl": impls}
    var_name = _CodeNamer(reserved=set(namespace))
    eqns = live_equations(jaxpr)
    kept = set(jaxpr.invars) | {v for v in jaxpr.outvars if isinstance(v, Var)}
    last_use = {x: i for i, eqn in enumerate(eqns) for x in eqn.inputs if isinstance(x, Var)}
    dies_at: dict[int, list[Var]] = {}
    for var, i in last_use.items():
        if var not in kept:
            dies_at.setdefault(i, []).append(var)
    reusable = _reusable_arrays(eqns)
    lines = [f"def {_function_name(name)}({', '.join(map(var_name, jaxpr.invars))}):"]
    for i, eqn in enumerate(eqns):
        out = _operand_to_overwrite(eqn, dies_at.get(i, []), reusable)
        call = _call_expression(eqn, var_name, impls, namespace, out)
        outs = ", ".join(var_name(v) if v in last_use or v in kept else "_"
                         for v in eqn.out_binders)
        if eqn.primitive.multiple_results and len(eqn.out_binders) == 1:
            outs += ","
        lines.append(f"    {outs} = {call}")
        if i in dies_at:
            lines.append(f"    del {', '.join(map(var_name, dies_at[i]))}")
    outs = ", ".join(map(var_name, jaxpr.outvars))
    lines.append(f"    return ({outs},)" if len(jaxpr.outvars) == 1 else f"    return ({outs})")
    return "\n".join(lines) + "\n", namespace


def live_equations(jaxpr: Jaxpr) -> list:
    """The equations that contribute to the outputs (primitives have no side
    effects, so the others can be skipped).  Walking backwards from the outputs,
    an equation is live when one of its results is needed, and then its inputs
    are needed too."""
    needed = {v for v in jaxpr.outvars if isinstance(v, Var)}
    live = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in needed for v in eqn.out_binders):
            live.append(eqn)
            needed.update(x for x in eqn.inputs if isinstance(x, Var))
    return live[::-1]


def _is_ufunc(eqn) -> bool:
    """Whether the equation is an elementwise NumPy function (np.sin, np.add...)."""
    return isinstance(eqn.primitive.impl, np.ufunc)


def _reusable_arrays(eqns: list) -> set:
    """Values whose memory the generated code may overwrite once they are dead:
    non-scalar floating-point arrays made by an elementwise NumPy function (so
    a fresh array, not the caller's, nor a view of another) and only ever read
    by such functions (which, unlike a reshape, keep no view of what they read)."""
    made = {v for eqn in eqns if _is_ufunc(eqn) for v in eqn.out_binders
            if v.aval.shape != () and v.aval.dtype.kind == "f"}
    read_otherwise = {x for eqn in eqns if not _is_ufunc(eqn) for x in eqn.inputs}
    return made - read_otherwise


def _operand_to_overwrite(eqn, dying: list, reusable: set):
    """An operand of an elementwise equation that dies there and can hold its result."""
    if not _is_ufunc(eqn):
        return None
    (result,) = eqn.out_binders
    for x in eqn.inputs:
        if x in dying and x in reusable and (x.aval.shape, x.aval.dtype) == (
                result.aval.shape, result.aval.dtype):
            return x
    return None


def _function_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned if cleaned.isidentifier() else f"f_{cleaned}"


def _call_expression(eqn, var_name, impls: _Impls, namespace: dict, out=None) -> str:
    primitive = eqn.primitive
    args = [var_name(x) for x in eqn.inputs]
    for key, value in sorted(eqn.params.items()):
        args.append(f"{key}={_param_source(value, namespace)}")
    impl = primitive.impl
    if out is None and impl in _OPERATORS:  # b * c runs faster than np.multiply(b, c)
        return _OPERATORS[impl].format(*args)
    if out is not None:
        args.append(f"out={var_name(out)}")
    if getattr(np, getattr(impl, "__name__", ""), None) is impl:
        return f"np.{impl.__name__}({', '.join(args)})"
    name = primitive.name + "_" if keyword.iskeyword(primitive.name) else primitive.name
    impls.by_name[name] = impl  # `while` is a Python keyword: it is called `while_`
    return f"impl.{name}({', '.join(args)})"


# NumPy functions that Python operators stand for.  On arrays ``b * c`` is
# ``np.multiply(b, c)``; on NumPy scalars it skips the ufunc machinery, which
# makes jitted scalar code about twice as fast.
_OPERATORS = {
    np.add: "{} + {}", np.subtract: "{} - {}", np.multiply: "{} * {}",
    np.divide: "{} / {}", np.power: "{} ** {}", np.negative: "-{}",
    np.less: "{} < {}", np.less_equal: "{} <= {}", np.greater: "{} > {}",
    np.greater_equal: "{} >= {}", np.equal: "{} == {}", np.not_equal: "{} != {}",
}


def _param_source(value, namespace: dict) -> str:
    """Source text for a parameter; values without one go into the namespace."""
    if isinstance(value, np.dtype):
        return f"np.{value.name}"
    if _is_literal(value):
        return repr(value)
    key = f"param_{len(namespace)}"
    namespace[key] = value
    return key


def _is_literal(value) -> bool:
    """Whether ``repr(value)`` is Python source for the value."""
    if type(value) is tuple:
        return all(map(_is_literal, value))
    return value is None or type(value) in (bool, int, float, str)


class _CodeNamer:
    """Variable names as in the printed jaxpr, minus Python keywords and our globals."""

    def __init__(self, reserved: set[str]):
        self.names: dict[Var, str] = {}
        self.fresh = (n for n in _names() if not keyword.iskeyword(n) and n not in reserved)

    def __call__(self, atom) -> str:
        if isinstance(atom, Literal):
            return repr(atom.val._value[()])
        if atom not in self.names:
            self.names[atom] = next(self.fresh)
        return self.names[atom]


# ---------------------------------------------------------------------------
# The user-facing jit.


# Staged jaxprs, per function and then per signature.  Keyed by the function
# itself, as in JAX, so ``jit(f)`` written twice does not trace ``f`` twice.
_trace_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# CPython's compile() takes longer per line the longer the function (about 12.6x
# the time for 10x the lines), so a longer jaxpr is compiled in pieces.
MAX_EQUATIONS_PER_FUNCTION = 1000


def split_into_pieces(jaxpr: Jaxpr, name: str) -> Jaxpr:
    """The same computation as a chain of ``jit`` equations, each running at most
    MAX_EQUATIONS_PER_FUNCTION of ``jaxpr``'s equations: each piece is then
    compiled on its own, and the whole in time proportional to its length."""
    size = MAX_EQUATIONS_PER_FUNCTION
    if len(jaxpr.eqns) <= size:  # short: no need to find its live equations
        return jaxpr
    eqns = live_equations(jaxpr)
    if len(eqns) <= size:
        return jaxpr
    # From the last piece back: a piece returns what is read after it.
    read_later = {v for v in jaxpr.outvars if isinstance(v, Var)}
    pieces = []
    for start in reversed(range(0, len(eqns), size)):
        piece = eqns[start:start + size]
        made = {v for eqn in piece for v in eqn.out_binders}
        outs = [v for eqn in piece for v in eqn.out_binders if v in read_later]
        ins = list(dict.fromkeys(x for eqn in piece for x in eqn.inputs
                                 if isinstance(x, Var) and x not in made))
        read_later = (read_later - made) | set(ins)
        part_name = f"{name}_{start // size + 1}"
        pieces.append(JaxprEqn(jit_p, ins, dict(jaxpr=Jaxpr([], ins, piece, outs),
                                                name=part_name), outs))
    return Jaxpr(jaxpr.constvars, jaxpr.invars, pieces[::-1], jaxpr.outvars)


def _cache_for(fun: Callable) -> dict:
    try:
        return _trace_cache.setdefault(fun, {})
    except TypeError:  # not weakly referenceable: cache for this jit object only
        return {}


def jit(fun: Callable, static_argnums: int | tuple[int, ...] = ()) -> Callable:
    """Compile ``fun``: trace it once per input signature, then run compiled code.

    ``static_argnums`` names arguments that are not traced but fixed at their
    Python value (and part of the cache key), so Python control flow on them works.
    Keyword arguments are traced like positional ones.
    """
    static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    cache = _cache_for(fun)
    name = _name_of(fun)

    def staged(args: tuple, kwargs: dict):
        dynamic_fun, dynamic_args = bind_static_args(fun, args, static_argnums)
        flat_args, in_tree = tree_flatten((tuple(dynamic_args), kwargs))
        in_avals = tuple(shaped_aval(x) for x in flat_args)
        statics = tuple(args[i % len(args)] for i in static_argnums)
        key = (in_tree, in_avals, statics)
        try:
            hash(statics)
        except TypeError as e:
            raise ValueError(f"Non-hashable static arguments are not supported: {e}. "
                             f"Pass a tuple instead of a list, or make the argument "
                             f"dynamic.") from None
        entry = cache.get(key)
        if entry is None:
            flat_fun, out_tree = flatten_fun(lambda a, k: dynamic_fun(*a, **k), in_tree)
            jaxpr, consts = trace_to_jaxpr(flat_fun, list(in_avals))
            entry = (closure_convert(jaxpr), consts, out_tree.get())
            # A function closing over a transformation's value cannot be reused.
            if not any(isinstance(c, Tracer) for c in consts):
                cache[key] = entry
        return entry, flat_args

    @functools.wraps(fun)
    def jitted(*args, **kwargs):
        (jaxpr, consts, out_tree), flat_args = staged(args, kwargs)
        outs = jit_p.bind(*consts, *flat_args, jaxpr=jaxpr, name=name)
        return tree_unflatten(out_tree, outs)

    def lower(*args, **kwargs) -> Lowered:
        (jaxpr, _, _), _ = staged(args, kwargs)
        return Lowered(jaxpr, name)

    jitted.lower = lower
    return jitted


def _name_of(fun: Callable) -> str:
    return getattr(fun, "__name__", type(fun).__name__)


class Lowered:
    """A jitted function at particular argument types: its jaxpr and compiled code."""

    def __init__(self, jaxpr: Jaxpr, name: str):
        self.jaxpr = jaxpr
        self.name = name

    def as_text(self) -> str:
        """The Python source minijax generated for this jaxpr."""
        return compile_jaxpr(self.jaxpr, self.name).source

    def __repr__(self):
        return pp_jaxpr(self.jaxpr)


# ---------------------------------------------------------------------------
# Forward mode through a jitted call: differentiate the jaxpr, stay jitted.


def _jit_jvp(primals, tangents, *, jaxpr: Jaxpr, name: str):
    new_jaxpr, consts = jvp_jaxpr(jaxpr)
    outs = jit_p.bind(*consts, *primals, *tangents, jaxpr=new_jaxpr, name=f"jvp({name})")
    half = len(outs) // 2
    return outs[:half], outs[half:]


@cache_per_jaxpr
def jvp_jaxpr(jaxpr: Jaxpr) -> tuple[Jaxpr, list]:
    """A jaxpr taking (primals, tangents) and returning (primals_out, tangents_out)."""
    n = len(jaxpr.invars)

    def jvp_traceable(*primals_and_tangents):
        primals_out, tangents_out = jvp_flat(
            jaxpr_as_fun(jaxpr), primals_and_tangents[:n], primals_and_tangents[n:])
        return [*primals_out, *tangents_out]

    new_jaxpr, consts = trace_to_jaxpr(jvp_traceable, jaxpr.in_avals * 2)
    return closure_convert(new_jaxpr), consts


jvp_rules[jit_p] = _jit_jvp
