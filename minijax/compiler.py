"""The compiler behind ``jit``: a jaxpr becomes the source of a Python function.

JAX compiles jaxprs with XLA.  minijax "compiles" a jaxpr into the source of a
plain Python function whose body is one NumPy call per equation, and ``exec``s
it.  The result has no tracing and no dispatch left in it, which is where jit's
speed comes from; ``jit(f).lower(*args).as_text()`` shows the generated code.
"""
from __future__ import annotations

import keyword
import types
from typing import Callable

import numpy as np

from minijax.jaxpr import Jaxpr, Literal, Var, _Namer
from minijax.partial_eval import dce_jaxpr, partition_list

# ---------------------------------------------------------------------------
# The compiler: jaxpr -> Python source -> function.


def compile_function(jaxpr: Jaxpr, name: str) -> Callable:
    """The Python function generated for ``jaxpr``; its source is ``.source``."""
    source, namespace = generate_source(jaxpr, name)
    exec(compile(source, f"<minijax.jit {name}>", "exec"), namespace)
    compiled = namespace[_function_name(name)]
    compiled.source = source
    return compiled


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
    # The generated code calls ``impl.<primitive>`` for primitives that are not
    # a single NumPy function.
    impls = types.SimpleNamespace()
    namespace = {"np": np, "impl": impls, "__name__": "minijax.compiled"}
    var_name = _Namer(_literal_source, reserved={*namespace, *keyword.kwlist})
    eqns = dce_jaxpr(jaxpr).eqns
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


def _reusable_arrays(eqns: list) -> set:
    """Values whose memory the generated code may overwrite once they are dead:
    non-scalar floating-point arrays made by an elementwise NumPy function (a
    ufunc: np.sin, np.add...; so a fresh array, not the caller's, nor a view of
    another) and only ever read by such functions (which, unlike a reshape, keep
    no view of what they read)."""
    others, ufuncs = partition_list([isinstance(e.primitive.impl, np.ufunc) for e in eqns], eqns)
    made = {v for e in ufuncs for v in e.out_binders if v.aval.shape and v.aval.dtype.kind == "f"}
    return made - {x for e in others for x in e.inputs}


def _operand_to_overwrite(eqn, dying: list, reusable: set):
    """An operand that dies at the equation and can hold its result (only elementwise
    equations read reusable values)."""
    out = eqn.out_binders[0].aval
    return next((x for x in eqn.inputs if x in dying and x in reusable
                 and (x.aval.shape, x.aval.dtype) == (out.shape, out.dtype)), None)


def _function_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned if cleaned.isidentifier() else f"f_{cleaned}"


def _call_expression(eqn, var_name, impls: types.SimpleNamespace, namespace: dict, out=None) -> str:
    args = [*map(var_name, eqn.inputs),
            *(f"{k}={_param_source(v, namespace)}" for k, v in sorted(eqn.params.items()))]
    impl, name = eqn.primitive.impl, eqn.primitive.name
    if out is None and impl in _OPERATORS:  # b * c runs faster than np.multiply(b, c)
        return _OPERATORS[impl].format(*args)
    if out is not None:
        args.append(f"out={var_name(out)}")
    if getattr(np, getattr(impl, "__name__", ""), None) is impl:
        return f"np.{impl.__name__}({', '.join(args)})"
    name = name + "_" if keyword.iskeyword(name) else name
    setattr(impls, name, impl)  # `while` is a Python keyword: it is called `while_`
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
    if type(value) is float:
        return bool(np.isfinite(value))  # repr(inf) is `inf`, a name the code lacks
    return value is None or type(value) in (bool, int, str)


def _literal_source(literal: Literal) -> str:
    """Source for a literal's NumPy scalar: its repr (``np.float32(0.5)``), except that
    inf and nan are written as strings, the repr's ``inf`` being no name in the code."""
    value = literal.val._value[()]
    if value.dtype.kind == "f" and not np.isfinite(value):
        return f"np.{value.dtype.name}('{value}')"
    return repr(value)
