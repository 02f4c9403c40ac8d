"""custom_jvp: a function whose derivative is a rule you write.

Calling a ``custom_jvp`` function binds ``custom_jvp_call``, a primitive that
carries two Python functions instead of a fixed operation: ``fun`` and its
JVP rule.  Each trace decides what to do with them (``process_custom_jvp_call``):

- evaluation runs ``fun`` and never the rule;
- forward mode runs the rule on primals and tangents, in place of
  differentiating ``fun``;
- staging (jit, make_jaxpr) records one equation that keeps ``fun`` as a jaxpr
  and the rule for later;
- batching batches both ``fun`` and the rule;
- partial evaluation (under ``grad``) only ever sees the tangent half of the
  rule, which is then transposed like any other linear computation.
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable

from minijax.core import (
    EvalTrace, Primitive, Trace, Tracer, find_top_trace, get_aval, suspended, trace_stack)
from minijax.jaxpr import (
    JaxprEqn, JaxprTrace, JaxprTracer, closure_convert, jaxpr_as_fun, trace_to_jaxpr)
from minijax.jit import compile_jaxpr
from minijax.jvp import JVPTrace, JVPTracer
from minijax.lax import zeros_like
from minijax.partial_eval import PartialEvalTrace
from minijax.tree_util import Store, flatten_fun, tree_flatten, tree_map, tree_unflatten
from minijax.vmap import BatchTrace, BatchTracer, batch_to_front


class CustomCallPrimitive(Primitive):
    """A call with custom rules.  It belongs to the innermost transformation among
    its arguments.  Differentiations above that one are suspended while it runs:
    ``fun`` or a rule closing over one of their values is an error, since the
    derivative with respect to that value could not be taken, as in JAX.  (Closing
    over values of jit or vmap is fine: staging and batching lose nothing.)"""

    multiple_results = True

    def bind(self, *args, **params):
        level = find_top_trace(args).main.level
        above = [m for m in trace_stack if m.level > level and m.trace_type is JVPTrace]
        with suspended(above, CLOSURE):
            return super().bind(*args, **params)


CLOSURE = ("inside a function with a custom derivative rule (or inside its rule) "
            "that closes over it instead of taking it as an argument")


class CustomJVPCallPrimitive(CustomCallPrimitive):
    """``custom_jvp_call``: bound with params ``fun`` and ``jvp`` (Python functions
    of flat arguments) or, once staged, ``call_jaxpr`` and ``jvp``."""

    def bind_with_trace(self, trace: Trace, tracers, params):
        fun, jvp = params.get("fun"), params["jvp"]
        if fun is None:
            # Staged, fun has known output types, which the rule must reproduce.
            fun = jaxpr_as_fun(params["call_jaxpr"])
            jvp = _check_rule_primals(jvp, params["call_jaxpr"].out_avals, params["name"])
        process = process_custom_jvp_call[type(trace)]
        return process(trace, self, fun, jvp, tracers, name=params["name"])


custom_jvp_call_p = CustomJVPCallPrimitive("custom_jvp_call")


def custom_call_abstract_eval(*avals, call_jaxpr, **_):
    return call_jaxpr.out_avals


def custom_call_impl(*args, call_jaxpr, **_):
    """Evaluated (e.g. in jitted code), a custom-rule call is just its function."""
    return compile_jaxpr(call_jaxpr)(*args)


custom_jvp_call_p.def_abstract_eval(custom_call_abstract_eval)
custom_jvp_call_p.def_impl(custom_call_impl)


# ---------------------------------------------------------------------------
# How each kind of trace processes the call, as JAX's traces do in their
# ``process_custom_jvp_call`` methods.


def _eval_custom_jvp_call(trace, primitive, fun, jvp, tracers, *, name):
    return fun(*tracers)  # no derivative is asked for: the rule never runs


def _jvp_custom_jvp_call(trace, primitive, fun, jvp, tracers, *, name):
    primals = [t.primal for t in tracers]
    tangents = [t.tangent for t in tracers]
    with suspended([trace.main], CLOSURE):  # the rule sees only its arguments
        outs = jvp(*primals, *tangents)  # the rule replaces differentiating fun
    half = len(outs) // 2
    return [JVPTracer(trace, p, t) for p, t in zip(outs[:half], outs[half:])]


def _staged_custom_jvp_call(trace, primitive, fun, jvp, tracers, *, name):
    return stage_custom_call(trace, primitive, fun, tracers, dict(jvp=jvp),
                             lambda consts: dict(jvp=_skip_consts(jvp, len(consts))), name=name)


def stage_custom_call(trace, primitive, fun, tracers, rules: dict,
                      rules_with_consts: Callable[[list], dict], **params):
    """Record one equation for a call with custom rules: ``fun`` staged as a
    jaxpr, the rules kept as the Python functions they are, to run later."""
    jaxpr, consts = trace_to_jaxpr(fun, [t.aval for t in tracers])
    if consts:
        # Values fun closes over become explicit leading arguments, which the
        # rules are adapted to take.  Bound again, the call goes to the innermost
        # transformation among them too (a vmap that fun closes over, say).
        return primitive.bind(*consts, *tracers, call_jaxpr=closure_convert(jaxpr),
                              **rules_with_consts(consts), **params)
    outs = [JaxprTracer(trace, aval) for aval in jaxpr.out_avals]
    builder = trace.builder
    builder.add_eqn(JaxprEqn(
        primitive, [builder.var_of(t) for t in tracers],
        dict(call_jaxpr=jaxpr, **rules, **params), [builder.add_var(t) for t in outs]))
    return outs


def _skip_consts(jvp: Callable, num_consts: int) -> Callable:
    @functools.wraps(jvp)
    def jvp_without_consts(*primals_and_tangents):
        n = len(primals_and_tangents) // 2
        primals, tangents = primals_and_tangents[:n], primals_and_tangents[n:]
        return jvp(*primals[num_consts:], *tangents[num_consts:])
    return jvp_without_consts


def _partial_eval_custom_jvp_call(trace, primitive, fun, jvp, tracers, *, name):
    if all(t.pval.is_known for t in tracers):
        # Known values: the call belongs to the traces below, rule and all.
        return primitive.bind(*[t.pval.const for t in tracers], fun=fun, jvp=jvp, name=name)
    # Unknown values are tangents (the JVP trace above has already used the
    # rule), so only fun's linear computation is needed: run it.
    return fun(*tracers)


def _batch_custom_jvp_call(trace, primitive, fun, jvp, tracers, *, name):
    vals = [t.val for t in tracers]
    dims = [t.batch_dim for t in tracers]
    batch = functools.partial(batch_to_front, trace.axis_size)
    # Outputs of both are batched at axis 0, so the batched rule matches fun.
    outs = primitive.bind(*vals, fun=batch(fun, dims), jvp=batch(jvp, dims * 2), name=name)
    return [BatchTracer(trace, o, 0) for o in outs]


process_custom_jvp_call: dict[type, Callable] = {
    EvalTrace: _eval_custom_jvp_call,
    JVPTrace: _jvp_custom_jvp_call,
    JaxprTrace: _staged_custom_jvp_call,
    PartialEvalTrace: _partial_eval_custom_jvp_call,
    BatchTrace: _batch_custom_jvp_call,
}


# ---------------------------------------------------------------------------
# The user-facing decorator.


class custom_jvp:  # noqa: N801  (JAX's name)
    """Give ``fun`` a custom JVP rule: ``@custom_jvp`` then ``@f.defjvp``.

    The rule takes ``(primals, tangents)``, tuples with one entry per argument,
    and returns ``(primal_out, tangent_out)``.  Arguments listed in
    ``nondiff_argnums`` are not differentiated and are passed to the rule first.
    """

    def __init__(self, fun: Callable, nondiff_argnums: tuple[int, ...] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.jvp: Callable | None = None

    def defjvp(self, jvp: Callable) -> Callable:
        self.jvp = jvp
        return jvp

    def defjvps(self, *jvps: Callable | None) -> None:
        """One rule per argument, ``rule(tangent, primal_out, *primals)``, each giving
        that argument's contribution to the output tangent (None: no contribution)."""
        if self.nondiff_argnums:
            raise TypeError("Can't use ``defjvps`` with ``nondiff_argnums``.")

        def jvp(primals, tangents):
            primal_out = self(*primals)
            contributions = [rule(t, primal_out, *primals)
                             for rule, t in zip(jvps, tangents) if rule is not None]
            zero = tree_map(zeros_like, primal_out)
            return primal_out, functools.reduce(_add_trees, contributions, zero)

        self.defjvp(jvp)

    def __call__(self, *args, **kwargs):
        name = getattr(self.fun, "__name__", "fun")
        if self.jvp is None:
            raise AttributeError(f"No JVP defined for custom_jvp function {name} using defjvp.")
        args = resolve_kwargs(self.fun, args, kwargs, name)
        fun, jvp, dyn_args = _bind_nondiff_args(self.fun, self.jvp, args, self.nondiff_argnums)
        args_flat, in_tree = tree_flatten(tuple(dyn_args))
        flat_fun, out_tree = flatten_fun(fun, in_tree)
        # Whichever of fun and the rule runs records the output structure.
        flat_jvp = _flatten_jvp(jvp, in_tree, out_tree, name,
                                getattr(self.jvp, "__name__", "jvp"))
        outs = custom_jvp_call_p.bind(*args_flat, fun=flat_fun, jvp=flat_jvp, name=name)
        return tree_unflatten(out_tree.get(), outs)


def resolve_kwargs(fun: Callable, args: tuple, kwargs: dict, name: str,
                   decorator: str = "custom_jvp") -> tuple:
    """Keyword arguments and defaults, turned into positional arguments."""
    try:
        return _positional(fun, args, kwargs)
    except TypeError as e:
        raise TypeError(f"The input arguments to the {decorator}-decorated function {name} "
                        f"could not be resolved to positional-only arguments. Binding "
                        f"failed with the error:\n{e}") from e


def _positional(fun: Callable, args: tuple, kwargs: dict) -> tuple:
    bound = inspect.signature(fun).bind(*args, **kwargs)
    bound.apply_defaults()
    # A keyword-only parameter cannot travel as a flat argument of the call. One
    # left to its default is fine: fun is called without it and supplies it itself.
    passed = [k for k in bound.kwargs if k in kwargs]
    if passed:
        raise TypeError(f"The following keyword arguments could not be resolved to "
                        f"positions: {', '.join(passed)}")
    return bound.args


def _bind_nondiff_args(fun, jvp, args, nondiff_argnums):
    """Give the non-differentiable arguments to ``fun`` in place and to the rule
    first, as JAX does.  Those holding traced values still travel as arguments of
    the call (so jit and vmap see them), but the rule gets only their values: their
    tangents are never used, so their derivative is zero.  The others (functions,
    Python numbers) are fixed into both."""
    if not nondiff_argnums:
        return fun, jvp, list(args)
    traced = [i for i in nondiff_argnums if _holds_tracers(args[i])]
    fixed = {i: args[i] for i in nondiff_argnums if i not in traced}
    diff = [i for i in range(len(args)) if i not in nondiff_argnums]
    n = len(traced)

    def fun_dyn(*dyn):  # dyn: the traced non-differentiable values, then the others
        values = {**fixed, **dict(zip(traced, dyn[:n])), **dict(zip(diff, dyn[n:]))}
        return fun(*[values[i] for i in range(len(args))])

    def jvp_dyn(primals, tangents):
        nondiff = {**fixed, **dict(zip(traced, primals[:n]))}
        return jvp(*[nondiff[i] for i in sorted(nondiff)], primals[n:], tangents[n:])

    return fun_dyn, jvp_dyn, [args[i] for i in traced] + [args[i] for i in diff]


def _holds_tracers(x) -> bool:
    return any(isinstance(leaf, Tracer) for leaf in tree_flatten(x)[0])


def _flatten_jvp(jvp: Callable, in_tree, out_tree: Store, primal_name: str,
                 jvp_name: str) -> Callable:
    """The rule as a function of flat primals and tangents, checking what it returns."""
    def flat_jvp(*primals_and_tangents):
        n = len(primals_and_tangents) // 2
        primals = tree_unflatten(in_tree, primals_and_tangents[:n])
        tangents = tree_unflatten(in_tree, primals_and_tangents[n:])
        pair = jvp(primals, tangents)
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"Custom JVP rule {jvp_name} for function {primal_name} must "
                            f"produce a pair (list or tuple of length two) representing "
                            f"primal and tangent outputs, but got {pair}.")
        primals_out, primal_tree = tree_flatten(pair[0])
        tangents_out, tangent_tree = tree_flatten(pair[1])
        if primal_tree != tangent_tree:
            raise TypeError(f"Custom JVP rule {jvp_name} for function {primal_name} must "
                            f"produce primal and tangent outputs with equal container "
                            f"(pytree) structures, but got {primal_tree} and {tangent_tree} "
                            f"respectively.")
        if out_tree.is_set() and out_tree.get() != primal_tree:
            raise TypeError(f"Custom JVP rule {jvp_name} for function {primal_name} must "
                            f"produce a pair whose first element has the output structure "
                            f"of {primal_name}, {out_tree.get()}, but it had {primal_tree}.")
        for p, t in zip(primals_out, tangents_out):
            _check_tangent_type(get_aval(p), get_aval(t))
        out_tree.set(primal_tree)
        return [*primals_out, *tangents_out]

    flat_jvp.__name__ = jvp_name
    return flat_jvp


def _check_tangent_type(primal, tangent) -> None:
    if primal.shape != tangent.shape or primal.dtype != tangent.dtype:
        raise TypeError(f"Custom JVP rule must produce primal and tangent outputs with "
                        f"corresponding shapes and dtypes. Expected "
                        f"{primal.str_short(False)} (tangent type of {primal.str_short(False)}) "
                        f"but got {tangent.str_short(False)}.")


def _check_rule_primals(jvp: Callable, out_avals: list, name: str) -> Callable:
    """The rule of a staged function, checking that its primal outputs have the
    function's output types (known only once the function has been staged)."""
    @functools.wraps(jvp)
    def checked_jvp(*primals_and_tangents):
        outs = jvp(*primals_and_tangents)
        rule_avals = [get_aval(p) for p in outs[:len(outs) // 2]]
        if [(a.shape, a.dtype) for a in rule_avals] != [(a.shape, a.dtype) for a in out_avals]:
            raise TypeError(
                f"Custom JVP rule {jvp.__name__} for function {name} must produce a pair "
                f"(list or tuple of length two) where the first element represents the "
                f"primal output (equal in value to the output of the custom_jvp-decorated "
                f"function {name}, and in particular with leaves of the same "
                f"shape/dtype), but instead the JVP rule output's first element had "
                f"shapes/dtypes of: {[a.str_short() for a in rule_avals]}, while {name} "
                f"returns {[a.str_short() for a in out_avals]}.")
        return outs
    return checked_jvp


def _add_trees(a, b):
    return tree_map(lambda x, y: x + y, a, b)
