"""Staging: tracing a Python function into a jaxpr (JAX's ``interpreters/partial_eval.py``).

``DynamicJaxprTrace`` is the trace of ``jit`` and ``make_jaxpr``, and of the
bodies of loops and the functions of custom rules: every primitive it receives
is written down as an equation instead of computed.  Values that are not its
own tracers (constants, or tracers of the transformations around it) become
the jaxpr's constants.

``PartialEvalTrace`` stages only what depends on its own tracers (the
*unknown* values) and hands every other operation to its parent trace at once.
It is the tangent trace of ``linearize``: primal work runs now, tangent work is
recorded.  This module also splits a jaxpr into known and unknown parts, and
removes equations whose results are not used.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from minijax import dtypes
from minijax.lax import lax
from minijax.core import (
    Array, ShapedArray, Trace, Tracer, eval_trace, get_aval, set_current_trace, to_array)
from minijax.jaxpr import (
    Jaxpr, JaxprEqn, Literal, Var, cache_per_jaxpr, convert_constvars_jaxpr)


class DynamicJaxprTracer(Tracer):
    """A value being staged: its type, and the jaxpr variable that will hold it."""

    __slots__ = ("aval", "var")

    def __init__(self, trace: Trace, aval: ShapedArray):
        self._trace = trace
        self.aval = aval
        self.var = Var(aval)

    def _short_repr(self) -> str:
        return f"JitTracer({self.aval})"


class DynamicJaxprTrace(Trace):
    """Records every primitive as an equation of the jaxpr being built."""

    def __init__(self, parent_trace: Trace | None = None, tag=None):
        super().__init__(parent_trace, tag)
        self.eqns: list[JaxprEqn] = []
        self.const_tracers: dict[int, DynamicJaxprTracer] = {}  # by the constant's id
        self.constvals: dict[Var, Any] = {}  # keeps the constants, so no id is reused

    def is_own(self, x) -> bool:
        return type(x) is DynamicJaxprTracer and x._trace is self

    def invalidate(self) -> None:
        super().invalidate()
        # Its constants' tracers point back at it: let go of them now, rather than
        # leave the cycle to the garbage collector.
        self.const_tracers.clear()

    def new_arg(self, aval: ShapedArray) -> DynamicJaxprTracer:
        return DynamicJaxprTracer(self, aval)

    def to_jaxpr_tracer(self, x) -> DynamicJaxprTracer:
        """Its own tracer as it is; any other value becomes a constant of the jaxpr."""
        if type(x) is DynamicJaxprTracer and x._trace is self:
            return x
        tracer = self.const_tracers.get(id(x))
        if tracer is None:
            tracer = self.const_tracers[id(x)] = DynamicJaxprTracer(self, get_aval(x))
            self.constvals[tracer.var] = x
        return tracer

    def add_eqn(self, primitive, inputs: list, params: dict, out_avals: list) -> list:
        """Record ``outs = primitive[params] inputs`` and return the new tracers."""
        outs = [DynamicJaxprTracer(self, aval) for aval in out_avals]
        self.eqns.append(JaxprEqn(primitive, [self.to_jaxpr_tracer(x).var for x in inputs],
                                  params, [t.var for t in outs]))
        return outs

    def process_primitive(self, primitive, args, params):
        if primitive is lax.convert_element_type_p and not isinstance(args[0], Tracer) \
                and get_aval(args[0]).shape == ():
            # As JAX does, a scalar constant is converted now rather than staged.
            return primitive.bind_with_trace(eval_trace, args, params)
        out_avals = primitive.abstract_eval(*map(get_aval, args), **params)
        if primitive.multiple_results:
            return self.add_eqn(primitive, args, params, out_avals)
        return self.add_eqn(primitive, args, params, [out_avals])[0]

    def process_custom_jvp_call(self, primitive, fun, jvp, args, **params):
        """One equation that keeps ``fun`` as a jaxpr and the rule for later.
        Values fun closes over become its leading arguments, whose tangents the
        rule, which closes over them itself, does not take."""
        call_jaxpr, consts = self._stage_call(fun, args)
        if consts:
            jvp = _without_leading_tangents(jvp, len(consts))
            params = dict(params, num_consts=len(consts))
        return self.add_eqn(primitive, [*consts, *args],
                            dict(params, call_jaxpr=call_jaxpr, jvp=jvp), call_jaxpr.out_avals)

    def process_custom_vjp_call(self, primitive, fun, fwd, bwd, args, **params):
        """As for custom_jvp; the leading arguments get zero cotangents."""
        call_jaxpr, consts = self._stage_call(fun, args)
        if consts:
            fwd, bwd = _without_leading_tangents(fwd, len(consts)), _zeros_first(bwd, consts)
            params = dict(params, num_consts=params.get("num_consts", 0) + len(consts))
        return self.add_eqn(primitive, [*consts, *args],
                            dict(params, call_jaxpr=call_jaxpr, fwd=fwd, bwd=bwd),
                            call_jaxpr.out_avals)

    def _stage_call(self, fun: Callable, args) -> tuple[Jaxpr, list]:
        avals = [self.to_jaxpr_tracer(x).aval for x in args]
        jaxpr, consts = trace_to_jaxpr(fun, avals)
        return convert_constvars_jaxpr(jaxpr), consts

    def to_jaxpr(self, in_tracers: list, outs: list, literals: bool = True
                 ) -> tuple[Jaxpr, list]:
        """The jaxpr recorded so far, from ``in_tracers`` to ``outs``, and the values
        of its constants (scalar ones written into it as literals, unless not asked)."""
        outvars = [self.to_jaxpr_tracer(x).var for x in outs]  # may add constants
        jaxpr = Jaxpr(list(self.constvals), [t.var for t in in_tracers], self.eqns, outvars)
        consts = list(self.constvals.values())
        return inline_scalar_literals(jaxpr, consts) if literals else (jaxpr, consts)


def _without_leading_tangents(jvp: Callable, num_consts: int) -> Callable:
    """A rule taking primals then tangents (or, for fwd, flags), minus those of the
    leading ``num_consts`` arguments."""
    @functools.wraps(jvp)
    def jvp_without_consts(*primals_and_tangents):
        n = len(primals_and_tangents) // 2
        return jvp(*primals_and_tangents[num_consts:n], *primals_and_tangents[n + num_consts:])
    return jvp_without_consts


def _zeros_first(bwd: Callable, consts: list) -> Callable:
    avals = [get_aval(c) for c in consts]
    return functools.wraps(bwd)(lambda *args: [*map(zeros_like_aval, avals), *bwd(*args)])


def trace_to_jaxpr(fun: Callable, in_avals: list[ShapedArray]) -> tuple[Jaxpr, list]:
    """Stage ``fun`` (flat arguments, flat results) at the given input types.

    Returns the jaxpr and the values of its constants, which may be tracers of
    the transformations around (values ``fun`` closes over).
    """
    trace = DynamicJaxprTrace()
    tracers_in = [trace.new_arg(aval) for aval in in_avals]
    with set_current_trace(trace):
        outs = fun(*tracers_in)
    jaxpr, consts = trace.to_jaxpr(tracers_in, outs)
    trace.invalidate()
    return jaxpr, consts


def inline_scalar_literals(jaxpr: Jaxpr, consts: list) -> tuple[Jaxpr, list]:
    """Write concrete scalar constants into the equations instead of as constvars."""
    literals = {var: Literal(to_array(val)) for var, val in zip(jaxpr.constvars, consts)
                if not isinstance(val, Tracer) and get_aval(val).shape == ()}
    if not literals:
        return jaxpr, consts
    kept = [(v, c) for v, c in zip(jaxpr.constvars, consts) if v not in literals]
    # Only the equations that read a literal change (most do not: keep them).
    eqns = [eqn._replace(inputs=[literals.get(x, x) for x in eqn.inputs])
            if any(x in literals for x in eqn.inputs) else eqn for eqn in jaxpr.eqns]
    outvars = [literals.get(v, v) for v in jaxpr.outvars]
    return Jaxpr([v for v, _ in kept], jaxpr.invars, eqns, outvars), [c for _, c in kept]


def zeros_like_aval(aval: ShapedArray):
    """Zeros of type ``aval``, made as JAX makes them: a broadcast scalar (for float0,
    which allows no operation, an array of that shape)."""
    if aval.dtype == dtypes.float0:
        return Array(np.zeros(aval.shape, aval.dtype))
    return lax.broadcast_in_dim(Array(np.zeros((), aval.dtype), aval.weak_type), aval.shape, ())


# ---------------------------------------------------------------------------
# Partial evaluation as the function runs: the tangent trace of linearize.


class PartialEvalTrace(DynamicJaxprTrace):
    """Stages what depends on its own tracers; runs everything else in the parent.

    Its tracers are the unknown values (tangents, under ``linearize``); every
    other value is known.  An operation on known values alone is bound in the
    parent trace right away.  One that reads an unknown is recorded, its known
    inputs becoming constants of the jaxpr (the *residuals*).  Primitives that
    carry jaxprs (jit, cond, loops) have rules that split them in two.
    """

    def process_primitive(self, primitive, args, params):
        for x in args:
            if type(x) is DynamicJaxprTracer and x._trace is self:
                break
        else:  # all known
            return primitive.bind_with_trace(self.parent_trace, args, params)
        rule = custom_partial_eval_rules.get(primitive)
        if rule is not None:
            return rule(self, args, **params)
        return super().process_primitive(primitive, args, params)

    def process_custom_jvp_call(self, primitive, fun, jvp, args, **params):
        if not any(map(self.is_own, args)):
            return primitive.bind_with_trace(self.parent_trace, (fun, jvp, *args), params)
        return self.inline(fun, args)

    def process_custom_vjp_call(self, primitive, fun, fwd, bwd, args, **params):
        if not any(map(self.is_own, args)):
            return primitive.bind_with_trace(self.parent_trace, (fun, fwd, bwd, *args), params)
        return self.inline(fun, args)

    def inline(self, fun: Callable, args) -> list:
        """Unknown values reach a custom rule's function only as tangents (the
        derivative was already taken above): its operations are staged one by one."""
        with set_current_trace(self):
            return fun(*args)


# Rules for primitives that carry jaxprs: (trace, args, **params) -> outputs.
custom_partial_eval_rules: dict = {}


# ---------------------------------------------------------------------------
# Jaxpr to jaxpr: removing dead equations, splitting known from unknown.


def dce_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """The jaxpr without the equations whose results are never used (primitives
    have no side effects, so leaving them out changes nothing)."""
    live, _ = _live_eqns(jaxpr.eqns, jaxpr.outvars)
    if len(live) == len(jaxpr.eqns):
        return jaxpr
    return Jaxpr(jaxpr.constvars, jaxpr.invars, live, jaxpr.outvars)


def _live_eqns(eqns: list[JaxprEqn], outvars: list) -> tuple[list[JaxprEqn], set[Var]]:
    """The equations that ``outvars`` depend on, and the variables they read."""
    needed = {v for v in outvars if type(v) is Var}
    live = []
    for eqn in reversed(eqns):
        if not needed.isdisjoint(eqn.out_binders):
            live.append(eqn)
            needed.update([x for x in eqn.inputs if type(x) is Var])
    return live[::-1], needed


def partial_eval_jaxpr(jaxpr: Jaxpr, in_unknowns: list[bool],
                       instantiate: list[bool] | None = None
                       ) -> tuple[Jaxpr, Jaxpr, list[bool], int]:
    """Split ``jaxpr`` into a known jaxpr (returning its known outputs then the
    residuals) and an unknown one (taking the residuals then unknown inputs)."""
    # Whether each variable is unknown (literals, absent, are known).
    unknown: dict[Var, bool] = dict(zip(jaxpr.invars, in_unknowns))
    residuals: dict[Var, None] = {}  # ordered set

    def as_residual(x):
        if isinstance(x, Var) and not unknown[x]:
            residuals[x] = None
        return x

    known_eqns, unknown_eqns = [], []
    for eqn in jaxpr.eqns:
        unks_in = [unknown.get(x, False) for x in eqn.inputs]
        unks_out = [any(unks_in)] * len(eqn.out_binders)
        rule = partial_eval_jaxpr_custom_rules.get(eqn.primitive)
        if rule is not None and any(unks_in) and not all(unks_in):
            eqn1, eqn2, unks_out, res = rule(unks_in, eqn)
            if eqn1 is not None:
                known_eqns.append(eqn1)
            unknown_eqns.append(eqn2)
            # A literal is no residual: the unknown equation reads it where it is.
            residuals.update(dict.fromkeys(r for r in res if isinstance(r, Var)))
        elif any(unks_in):
            unknown_eqns.append(eqn._replace(inputs=[as_residual(x) for x in eqn.inputs]))
        else:
            known_eqns.append(eqn)
        unknown.update(zip(eqn.out_binders, unks_out))
    out_unknowns = [unknown.get(v, False) for v in jaxpr.outvars]
    for i, inst in enumerate(instantiate or ()):
        if inst:  # a known output made unknown is passed on as a residual
            as_residual(jaxpr.outvars[i])
            out_unknowns[i] = True
    known_out, unknown_out = partition_list(out_unknowns, jaxpr.outvars)
    # As JAX does, dead equations go first: the unknown side's, then the residuals
    # only they read, then the known equations that computed nothing else.
    unknown_eqns, needed = _live_eqns(unknown_eqns, unknown_out)
    res = [r for r in residuals if r in needed]
    known_eqns, _ = _live_eqns(known_eqns, known_out + res)
    known_in, unknown_in = partition_list(in_unknowns, jaxpr.invars)
    return (Jaxpr([], known_in, known_eqns, known_out + res),
            Jaxpr([], res + unknown_in, unknown_eqns, unknown_out), out_unknowns, len(res))


def partition_list(flags: list[bool], xs: list) -> tuple[list, list]:
    """The ``xs`` whose flag is false, and those whose flag is true."""
    return [x for x, f in zip(xs, flags) if not f], [x for x, f in zip(xs, flags) if f]


# Rules splitting one equation that carries jaxprs: (unknown inputs, eqn) ->
# (known eqn or None, unknown eqn, unknown outputs, residuals: the known atoms
# the unknown eqn reads).
partial_eval_jaxpr_custom_rules: dict = {}


@cache_per_jaxpr
def split_jaxpr(jaxpr: Jaxpr, in_unknowns: tuple[bool, ...]):
    """``partial_eval_jaxpr``, done once per jaxpr and pattern of unknowns."""
    return partial_eval_jaxpr(jaxpr, list(in_unknowns))


def partial_eval_staged(trace: PartialEvalTrace, primitive, args, jaxpr: Jaxpr,
                        make_params: Callable[[Jaxpr], dict]) -> list:
    """The rule for a primitive that runs one jaxpr (jit): run its known part in
    the parent now, and stage its unknown part, fed by the residuals."""
    in_unknowns = tuple(map(trace.is_own, args))
    jaxpr_known, jaxpr_unknown, out_unknowns, num_res = split_jaxpr(jaxpr, in_unknowns)
    known_vals, unknown_args = partition_list(in_unknowns, args)
    outs_and_res = primitive.bind_with_trace(trace.parent_trace, known_vals,
                                             make_params(jaxpr_known))
    residuals = outs_and_res[len(outs_and_res) - num_res:]
    unknown_outs = iter(trace.add_eqn(primitive, [*residuals, *unknown_args],
                                      make_params(jaxpr_unknown), jaxpr_unknown.out_avals))
    # As in JAX, a known output that is a known input is forwarded: it is that value.
    # (The residuals come last: they are not reached.)
    given = dict(zip(jaxpr_known.invars, known_vals))
    known_outs = iter([given.get(v, out) if isinstance(v, Var) else out
                       for v, out in zip(jaxpr_known.outvars, outs_and_res)])
    return [next(unknown_outs) if u else next(known_outs) for u in out_unknowns]
