"""jit (JAX's ``pjit.py``): stage a function once, compile it, call the compiled code.

Inside other transformations a jitted function is the primitive ``jit``, whose
parameters carry the staged jaxpr.  Each transformation handles it with a rule,
registered here like any primitive's: the rule transforms that jaxpr, so the
result is again one ``jit`` equation.
"""
from __future__ import annotations

import functools
import weakref
from typing import Callable

from minijax import ad, batching
from minijax.ad import Zero, instantiate_zeros, jvp_jaxpr, transpose_jaxpr
from minijax.compiler import compile_function
from minijax.core import (
    Array, Primitive, Tracer, as_array, eval_trace, get_aval, to_array, trace_ctx)
from minijax.jaxpr import (
    ClosedJaxpr, Jaxpr, JaxprEqn, Var, cache_per_jaxpr, convert_constvars_jaxpr, pp_jaxpr)
from minijax.partial_eval import (
    custom_partial_eval_rules, dce_jaxpr, partial_eval_jaxpr_custom_rules, partial_eval_staged,
    partition_list, split_jaxpr, trace_to_jaxpr)
from minijax.tree_util import flatten_fun, tree_flatten, tree_unflatten

jit_p = Primitive("jit")
jit_p.multiple_results = True


@jit_p.def_abstract_eval
def _jit_abstract_eval(*in_avals, jaxpr: Jaxpr, name: str):
    if [(a.shape, a.dtype) for a in in_avals] != [(a.shape, a.dtype) for a in jaxpr.in_avals]:
        raise TypeError(f"jit-compiled {name} called with arguments of types "
                        f"{[a.str_short() for a in in_avals]}, expected "
                        f"{[a.str_short() for a in jaxpr.in_avals]}")
    return jaxpr.out_avals


@jit_p.def_impl
def _jit_impl(*args, jaxpr: Jaxpr, name: str):
    # Like every impl, it runs with NumPy's floating-point warnings ignored (core.py).
    return compile_jaxpr(jaxpr, name)(*args)


@cache_per_jaxpr
def compile_jaxpr(jaxpr: Jaxpr, name: str = "jitted") -> Callable:
    """The compiled function of ``jaxpr``, made once and kept with it."""
    return compile_function(split_into_pieces(jaxpr, name), name)


# CPython's compile() takes longer per line the longer the function (about 12.6x
# the time for 10x the lines), so a longer jaxpr is compiled in pieces.
MAX_EQUATIONS_PER_FUNCTION = 1000


def split_into_pieces(jaxpr: Jaxpr, name: str) -> Jaxpr:
    """The same computation as a chain of ``jit`` equations, each running at most
    MAX_EQUATIONS_PER_FUNCTION of ``jaxpr``'s equations: each piece is then
    compiled on its own, and the whole in time proportional to its length."""
    size = MAX_EQUATIONS_PER_FUNCTION
    eqns = dce_jaxpr(jaxpr).eqns
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
        params = dict(jaxpr=Jaxpr([], ins, piece, outs), name=f"{name}_{start // size + 1}")
        pieces.append(JaxprEqn(jit_p, ins, params, outs))
    return Jaxpr(jaxpr.constvars, jaxpr.invars, pieces[::-1], jaxpr.outvars)


# ---------------------------------------------------------------------------
# The rules of jit_p: each transforms the jaxpr it carries.


def _jit_jvp(primals, tangents, *, jaxpr: Jaxpr, name: str):
    nonzeros = tuple(type(t) is not Zero for t in tangents)
    new_jaxpr, consts, out_nonzeros = jvp_jaxpr(jaxpr, nonzeros)
    outs = jit_p.bind(*consts, *primals, *[t for t in tangents if type(t) is not Zero],
                      jaxpr=new_jaxpr, name=name)
    num_out = len(jaxpr.outvars)
    nz_tangents = iter(outs[num_out:])
    return outs[:num_out], [next(nz_tangents) if nz else Zero(aval)
                            for nz, aval in zip(out_nonzeros, jaxpr.out_avals)]


def _jit_partial_eval(trace, args, *, jaxpr: Jaxpr, name: str):
    return partial_eval_staged(trace, jit_p, args, jaxpr,
                               lambda part: dict(jaxpr=part, name=name))


def _jit_partial_eval_jaxpr(unks_in: list[bool], eqn: JaxprEqn):
    known, unknown, out_unknowns, num_res = split_jaxpr(eqn.params["jaxpr"], tuple(unks_in))
    residuals = [Var(aval) for aval in known.out_avals[len(known.outvars) - num_res:]]
    known_in, unknown_in = partition_list(unks_in, eqn.inputs)
    known_out, unknown_out = partition_list(out_unknowns, eqn.out_binders)
    return (JaxprEqn(jit_p, known_in, dict(eqn.params, jaxpr=known), known_out + residuals),
            JaxprEqn(jit_p, residuals + unknown_in, dict(eqn.params, jaxpr=unknown), unknown_out),
            out_unknowns, residuals)


def _jit_transpose(cts, *args, jaxpr: Jaxpr, name: str):
    undefined = tuple(map(ad.is_undefined_primal, args))
    transposed, consts = transpose_jaxpr(jaxpr, undefined)
    defined = [a for a in args if not ad.is_undefined_primal(a)]
    outs = iter(jit_p.bind(*consts, *defined, *map(instantiate_zeros, cts),
                           jaxpr=transposed, name=name))
    return [next(outs) if u else None for u in undefined]


def _jit_batch(axis_size, vals, dims, *, jaxpr: Jaxpr, name: str):
    new_jaxpr, consts, _ = batching.vmap_jaxpr(jaxpr, axis_size, tuple(dims))
    outs = jit_p.bind(*consts, *vals, jaxpr=new_jaxpr, name=name)
    return outs, [0] * len(outs)


ad.primitive_jvps[jit_p] = _jit_jvp
ad.primitive_transposes[jit_p] = _jit_transpose
custom_partial_eval_rules[jit_p] = _jit_partial_eval
partial_eval_jaxpr_custom_rules[jit_p] = _jit_partial_eval_jaxpr
batching.primitive_batchers[jit_p] = _jit_batch


# ---------------------------------------------------------------------------
# The user-facing jit.


# Staged jaxprs, per function and then per signature.  Keyed by the function
# itself, as in JAX, so ``jit(f)`` written twice does not trace ``f`` twice.
_trace_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shaped_aval(x):
    return get_aval(x if isinstance(x, Tracer) else to_array(x))


def bind_static_args(fun: Callable, args: tuple, static_argnums) -> tuple[Callable, list, tuple]:
    """Split arguments into static ones, fixed into ``fun``, and dynamic ones;
    the static values come last."""
    statics = {i % len(args): args[i % len(args)] for i in static_argnums}
    if not statics:
        return fun, list(args), ()

    def with_statics(*dynamic):
        dynamic = iter(dynamic)
        return fun(*[statics[i] if i in statics else next(dynamic) for i in range(len(args))])

    return with_statics, [a for i, a in enumerate(args) if i not in statics], (*statics.values(),)


def jit(fun: Callable, static_argnums: int | tuple[int, ...] = ()) -> Callable:
    """Compile ``fun``: trace it once per input signature, then run compiled code.

    ``static_argnums`` names arguments that are not traced but fixed at their
    Python value (and part of the cache key), so Python control flow on them works.
    Keyword arguments are traced like positional ones.
    """
    static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    try:
        cache = _trace_cache.setdefault(fun, {})
    except TypeError:  # not weakly referenceable: cache for this jit object only
        cache = {}
    name = getattr(fun, "__name__", type(fun).__name__)
    # Calls with minijax arrays only, outside any transformation: the compiled
    # function, found by the arguments' types alone (JAX has a C++ path for these).
    ready: dict[tuple, Callable] = {}

    def staged(args: tuple, kwargs: dict):
        dynamic_fun, dynamic_args, statics = bind_static_args(fun, args, static_argnums)
        flat_args, in_tree = tree_flatten((tuple(dynamic_args), kwargs))
        in_avals = tuple(map(shaped_aval, flat_args))
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
            # Constants become leading arguments of the jit equation.
            entry = (convert_constvars_jaxpr(jaxpr), consts, out_tree.get(), jaxpr)
            # A function closing over a transformation's value cannot be reused.
            if not any(isinstance(c, Tracer) for c in consts):
                cache[key] = entry
        return entry, flat_args

    @functools.wraps(fun)
    def jitted(*args, **kwargs):
        if trace_ctx.trace is eval_trace and not kwargs:
            run = ready.get(tuple([a.aval if type(a) is Array else None for a in args]))
            if run is not None:
                return run(args)
        (jaxpr, consts, out_tree, _), flat_args = staged(args, kwargs)
        if trace_ctx.trace is not eval_trace:
            return tree_unflatten(out_tree, jit_p.bind(*consts, *flat_args, jaxpr=jaxpr, name=name))
        run = _runner(jaxpr, name, consts, out_tree)
        if (not kwargs and not static_argnums and all(type(a) is Array for a in args)
                and not any(isinstance(c, Tracer) for c in consts)):
            ready[tuple(a.aval for a in args)] = run
        return run(flat_args)

    def trace(*args, **kwargs) -> ClosedJaxpr:
        """The staged jaxpr, with its constants (what make_jaxpr shows)."""
        (_, consts, _, jaxpr), _ = staged(args, kwargs)
        return ClosedJaxpr(jaxpr, consts)

    def lower(*args, **kwargs) -> Lowered:
        (jaxpr, _, _, _), _ = staged(args, kwargs)
        return Lowered(jaxpr, name)

    jitted.trace = trace
    jitted.lower = lower
    return jitted


def _runner(jaxpr: Jaxpr, name: str, consts: list, out_tree) -> Callable:
    """What the evaluation trace does with a jit equation, as a function of the
    flat arguments, without going through bind: no transformation is active, and
    the cache key has checked the arguments' types."""
    compiled = compile_jaxpr(jaxpr, name)
    out_avals = jaxpr.out_avals

    def run(args) -> list:
        args = [*consts, *args]
        if any(isinstance(x, Tracer) for x in args):  # a leaked tracer: bind says so
            outs = jit_p.bind(*args, jaxpr=jaxpr, name=name)
        else:
            values = [x._value if type(x) is Array else to_array(x)._value for x in args]
            outs = [as_array(o, aval) for o, aval in zip(compiled(*values), out_avals)]
        return tree_unflatten(out_tree, outs)
    return run


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
