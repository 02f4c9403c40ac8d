"""Partial evaluation: run what is known now, stage what is not.

``linearize`` is forward mode plus partial evaluation.  Run the JVP with known
primals and *unknown* tangents: every operation on primals alone is computed
right away, and every operation that touches a tangent is recorded into a
jaxpr.  Because JVP rules are linear in the tangents, that jaxpr is a linear
function: the Jacobian of ``f`` at the primal point, as a program.  Its
constants are the *residuals*, the primal values the tangent computation needs.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, NamedTuple

from minijax.core import ShapedArray, Trace, Tracer, concrete_or_error, full_lower, full_raise, get_aval, new_main
from minijax.jaxpr import Jaxpr, JaxprEqn, Var, cache_per_jaxpr
from minijax.jit import jit_p
from minijax.jvp import jvp_flat


class PartialVal(NamedTuple):
    """A value that is either known (``const`` holds it) or only described by ``aval``."""
    aval: ShapedArray
    const: Any | None

    @classmethod
    def known(cls, val) -> PartialVal:
        return PartialVal(get_aval(val), val)

    @classmethod
    def unknown(cls, aval: ShapedArray) -> PartialVal:
        return PartialVal(aval, None)

    is_known = property(lambda self: self.const is not None)


# How an unknown value will be computed once the staged jaxpr runs.
class LambdaBindingRecipe(NamedTuple):
    pass


class ConstRecipe(NamedTuple):
    val: Any


class JaxprEqnRecipe(NamedTuple):
    primitive: Any
    tracers_in: list
    params: dict
    avals_out: list[ShapedArray]
    tracer_refs_out: list  # weak references, so dead branches are not staged


class PartialEvalTracer(Tracer):
    __slots__ = ("pval", "recipe", "__weakref__")

    def __init__(self, trace: Trace, pval: PartialVal, recipe):
        self._trace = trace
        self.pval = pval
        self.recipe = recipe

    aval = property(lambda self: self.pval.aval)

    def full_lower(self):
        return full_lower(self.pval.const) if self.pval.is_known else self

    def concrete_value(self, reason):
        if self.pval.is_known:
            return concrete_or_error(self.pval.const, reason)
        return super().concrete_value(reason)


class PartialEvalTrace(Trace):
    def new_arg(self, pval: PartialVal) -> PartialEvalTracer:
        return PartialEvalTracer(self, pval, LambdaBindingRecipe())

    def lift(self, val) -> PartialEvalTracer:
        return PartialEvalTracer(self, PartialVal.known(val), None)

    pure = lift

    def instantiate_const(self, tracer: PartialEvalTracer) -> PartialEvalTracer:
        """A known value that an unknown computation needs becomes a residual."""
        if not tracer.pval.is_known:
            return tracer
        return PartialEvalTracer(self, PartialVal.unknown(tracer.aval),
                                 ConstRecipe(tracer.pval.const))

    def process_primitive(self, primitive, tracers, params):
        if all(t.pval.is_known for t in tracers):
            return primitive.bind(*[t.pval.const for t in tracers], **params)
        rule = partial_eval_rules.get(primitive)
        if rule is not None:
            return rule(self, tracers, **params)
        tracers_in = [self.instantiate_const(t) for t in tracers]
        avals_out = primitive.abstract_eval(*[t.aval for t in tracers_in], **params)
        avals_out = avals_out if primitive.multiple_results else [avals_out]
        return self.stage(primitive, tracers_in, params, avals_out, primitive.multiple_results)

    def stage(self, primitive, tracers_in, params, avals_out, multiple_results=True):
        outs = [PartialEvalTracer(self, PartialVal.unknown(aval), None) for aval in avals_out]
        recipe = JaxprEqnRecipe(primitive, tracers_in, params, avals_out,
                                [weakref.ref(t) for t in outs])
        for t in outs:
            t.recipe = recipe
        return outs if multiple_results else outs[0]


partial_eval_rules: dict = {}


def partial_eval_flat(f: Callable, pvals_in: list[PartialVal],
                      instantiate: Callable[[int], list[bool]]
                      ) -> tuple[Jaxpr, list[PartialVal], list]:
    """Run ``f`` on partially known inputs.

    Returns the jaxpr of the unknown part (its constvars are the residuals), the
    partial values of the outputs, and the residuals' values.  Outputs marked by
    ``instantiate(number_of_outputs)`` become outputs of the jaxpr even when known.
    """
    with new_main(PartialEvalTrace) as main:
        trace = PartialEvalTrace(main)
        tracers_in = [trace.new_arg(pval) for pval in pvals_in]
        outs = f(*tracers_in)
        tracers_out = [full_raise(trace, out) for out in outs]
        tracers_out = [trace.instantiate_const(t) if inst else t
                       for t, inst in zip(tracers_out, instantiate(len(tracers_out)))]
        pvals_out = [t.pval for t in tracers_out]
        unknown_in = [t for t in tracers_in if not t.pval.is_known]
        unknown_out = [t for t in tracers_out if not t.pval.is_known]
        jaxpr, consts = tracers_to_jaxpr(unknown_in, unknown_out)
    return jaxpr, pvals_out, consts


def tracers_to_jaxpr(tracers_in: list[PartialEvalTracer],
                     tracers_out: list[PartialEvalTracer]) -> tuple[Jaxpr, list]:
    """Read the recorded recipes back, from the outputs, into a jaxpr."""
    tracer_to_var = {id(t): Var(t.aval) for t in tracers_in}
    const_vars: dict[int, Var] = {}
    constvals: dict[Var, Any] = {}
    eqns, seen_recipes = [], set()
    for t in toposort(tracers_out):
        if isinstance(t.recipe, LambdaBindingRecipe):
            continue
        if isinstance(t.recipe, ConstRecipe):
            val = t.recipe.val
            if id(val) not in const_vars:
                const_vars[id(val)] = Var(get_aval(val))
                constvals[const_vars[id(val)]] = val
            tracer_to_var[id(t)] = const_vars[id(val)]
        elif id(t.recipe) not in seen_recipes:
            seen_recipes.add(id(t.recipe))
            eqns.append(_recipe_to_eqn(tracer_to_var, t.recipe))
    jaxpr = Jaxpr(list(constvals), [tracer_to_var[id(t)] for t in tracers_in], eqns,
                  [tracer_to_var[id(t)] for t in tracers_out])
    return jaxpr, list(constvals.values())


def _recipe_to_eqn(tracer_to_var: dict, recipe: JaxprEqnRecipe) -> JaxprEqn:
    inputs = [tracer_to_var[id(t)] for t in recipe.tracers_in]
    out_binders = [Var(aval) for aval in recipe.avals_out]
    for ref, var in zip(recipe.tracer_refs_out, out_binders):
        if ref() is not None:
            tracer_to_var[id(ref())] = var
    return JaxprEqn(recipe.primitive, inputs, recipe.params, out_binders)


def _parents(t: PartialEvalTracer) -> list:
    return t.recipe.tracers_in if isinstance(t.recipe, JaxprEqnRecipe) else []


def toposort(out_nodes: list) -> list:
    """Tracers in an order where each comes after those it is computed from.

    A depth-first walk from the outputs: a tracer is listed once all its parents
    are.  Iterative, so that long chains of operations do not exhaust Python's
    stack; the recipes form no cycles, so a tracer is marked as seen when first
    reached.
    """
    order, seen = [], set()
    for root in out_nodes:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(_parents(root)))]
        while stack:
            node, parents = stack[-1]
            for parent in parents:
                if id(parent) not in seen:
                    seen.add(id(parent))
                    stack.append((parent, iter(_parents(parent))))
                    break
            else:  # every parent is listed
                stack.pop()
                order.append(node)
    return order


# ---------------------------------------------------------------------------
# linearize.


def linearize_flat(f: Callable, primals_in: list) -> tuple[list, Jaxpr, list]:
    """Primal outputs of ``f``, and its linearization as a jaxpr plus residuals."""
    n = len(primals_in)
    pvals_in = ([PartialVal.known(x) for x in primals_in]
                + [PartialVal.unknown(get_aval(x)) for x in primals_in])

    def f_jvp(*primals_tangents_in):
        primals_out, tangents_out = jvp_flat(f, primals_tangents_in[:n], primals_tangents_in[n:])
        return [*primals_out, *tangents_out]

    def tangents_only(num_outs: int) -> list[bool]:
        # Every tangent output belongs to the linear jaxpr, even a known zero.
        return [False] * (num_outs // 2) + [True] * (num_outs // 2)

    jaxpr, pvals_out, residuals = partial_eval_flat(f_jvp, pvals_in, tangents_only)
    primals_out = [pval.const for pval in pvals_out[:len(pvals_out) // 2]]
    return primals_out, jaxpr, residuals


# ---------------------------------------------------------------------------
# Splitting a jaxpr into its known and unknown parts (for staged calls like jit).


def partial_eval_jaxpr(jaxpr: Jaxpr, in_unknowns: list[bool],
                       instantiate: list[bool] | None = None
                       ) -> tuple[Jaxpr, Jaxpr, list[bool], int]:
    """Split ``jaxpr`` into a known jaxpr (returning its known outputs then the
    residuals) and an unknown one (taking the residuals then unknown inputs)."""
    unknown: dict[Var, bool] = {}
    residuals: dict[Var, None] = {}  # ordered set

    def is_unknown(x) -> bool:
        return isinstance(x, Var) and unknown[x]

    def as_residual(x):
        if isinstance(x, Var) and not unknown[x]:
            residuals[x] = None
        return x

    unknown.update(zip(jaxpr.invars, in_unknowns))
    known_eqns, unknown_eqns = [], []
    for eqn in jaxpr.eqns:
        unks_in = [is_unknown(x) for x in eqn.inputs]
        rule = partial_eval_jaxpr_rules.get(eqn.primitive)
        if rule is not None and any(unks_in) and not all(unks_in):
            eqn1, eqn2, unks_out, res = rule(unks_in, eqn)
            known_eqns.append(eqn1)
            unknown_eqns.append(eqn2)
            residuals.update(dict.fromkeys(res))
            unknown.update(zip(eqn.out_binders, unks_out))
        elif any(unks_in):
            unknown_eqns.append(eqn._replace(inputs=[as_residual(x) for x in eqn.inputs]))
            unknown.update(dict.fromkeys(eqn.out_binders, True))
        else:
            known_eqns.append(eqn)
            unknown.update(dict.fromkeys(eqn.out_binders, False))
    out_unknowns = [is_unknown(v) for v in jaxpr.outvars]
    if instantiate is not None:
        for v, unk, inst in zip(jaxpr.outvars, out_unknowns, instantiate):
            if inst and not unk:
                as_residual(v)
        out_unknowns = [u or i for u, i in zip(out_unknowns, instantiate)]
    res = list(residuals)
    known_in = [v for v, u in zip(jaxpr.invars, in_unknowns) if not u]
    unknown_in = [v for v, u in zip(jaxpr.invars, in_unknowns) if u]
    known_out = [v for v, u in zip(jaxpr.outvars, out_unknowns) if not u]
    unknown_out = [v for v, u in zip(jaxpr.outvars, out_unknowns) if u]
    jaxpr_known = Jaxpr([], known_in, known_eqns, known_out + res)
    jaxpr_unknown = Jaxpr([], res + unknown_in, unknown_eqns, unknown_out)
    return jaxpr_known, jaxpr_unknown, out_unknowns, len(res)


partial_eval_jaxpr_rules: dict = {}


# ---------------------------------------------------------------------------
# jit under partial evaluation: one jit for the known part, one for the rest.


@cache_per_jaxpr
def _split_jit(jaxpr: Jaxpr, in_unknowns: tuple[bool, ...]):
    return partial_eval_jaxpr(jaxpr, list(in_unknowns))


def _jit_partial_eval(trace: PartialEvalTrace, tracers, *, jaxpr: Jaxpr, name: str):
    in_unknowns = tuple(not t.pval.is_known for t in tracers)
    jaxpr_known, jaxpr_unknown, out_unknowns, num_res = _split_jit(jaxpr, in_unknowns)
    known_vals = [t.pval.const for t, u in zip(tracers, in_unknowns) if not u]
    outs_and_res = jit_p.bind(*known_vals, jaxpr=jaxpr_known, name=name)
    num_known_out = len(outs_and_res) - num_res
    known_outs, residuals = outs_and_res[:num_known_out], outs_and_res[num_known_out:]
    res_tracers = [trace.instantiate_const(full_raise(trace, r)) for r in residuals]
    unknown_tracers = [t for t, u in zip(tracers, in_unknowns) if u]
    unknown_outs = trace.stage(jit_p, res_tracers + unknown_tracers,
                               dict(jaxpr=jaxpr_unknown, name=name), jaxpr_unknown.out_avals)
    known_iter, unknown_iter = iter(known_outs), iter(unknown_outs)
    return [next(unknown_iter) if u else next(known_iter) for u in out_unknowns]


def _jit_partial_eval_jaxpr(unks_in: list[bool], eqn: JaxprEqn):
    jaxpr = eqn.params["jaxpr"]
    name = eqn.params["name"]
    jaxpr_known, jaxpr_unknown, out_unknowns, num_res = _split_jit(jaxpr, tuple(unks_in))
    residuals = [Var(aval) for aval in jaxpr_known.out_avals[len(jaxpr_known.outvars) - num_res:]]
    known_in = [x for x, u in zip(eqn.inputs, unks_in) if not u]
    unknown_in = [x for x, u in zip(eqn.inputs, unks_in) if u]
    known_out = [v for v, u in zip(eqn.out_binders, out_unknowns) if not u]
    unknown_out = [v for v, u in zip(eqn.out_binders, out_unknowns) if u]
    eqn_known = JaxprEqn(jit_p, known_in, dict(jaxpr=jaxpr_known, name=name),
                         known_out + residuals)
    eqn_unknown = JaxprEqn(jit_p, residuals + unknown_in, dict(jaxpr=jaxpr_unknown, name=name),
                           unknown_out)
    return eqn_known, eqn_unknown, out_unknowns, residuals


partial_eval_rules[jit_p] = _jit_partial_eval
partial_eval_jaxpr_rules[jit_p] = _jit_partial_eval_jaxpr
