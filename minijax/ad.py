"""Automatic differentiation (JAX's ``interpreters/ad.py``).

Forward mode: under ``jvp`` a value that depends on the inputs is a
``JVPTracer`` holding a primal and a tangent.  ``JVPTrace`` computes each
primitive's output tangent with the primitive's JVP rule; the rules are written
with minijax.lax, so they can themselves be traced, which is what makes higher
derivatives work.

Linearization: ``LinearizeTrace`` runs the same rules, but with the *tangent
trace* current, a ``PartialEvalTrace`` that computes the primal operations at
once (in the parent trace) and records the tangent ones into a jaxpr.  That
jaxpr is linear in the input tangents: the Jacobian at the primal point, as a
program.  ``vjp`` and ``grad`` transpose it: the backward pass walks its
equations from last to first, turning output cotangents into input cotangents
with each primitive's *transpose rule*.

A tangent known to be zero is not an array but ``Zero(aval)``: rules skip it,
so constants cost no derivative work and no ``mul t 0.0`` appears in jaxprs.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from minijax.lax import lax
from minijax.core import (
    Array, Primitive, ShapedArray, Trace, TraceTag, Tracer, get_aval, short_repr,
    set_current_trace, take_current_trace, to_array)
from minijax.errors import CustomVJPException
from minijax.jaxpr import Jaxpr, Literal, Var, cache_per_jaxpr, convert_constvars_jaxpr, jaxpr_as_fun
from minijax.partial_eval import PartialEvalTrace, dce_jaxpr, trace_to_jaxpr, zeros_like_aval

# ---------------------------------------------------------------------------
# Symbolic zeros.


class _TypeOnly:
    """A stand-in for an array of which only the type, ``aval``, is known."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self):
        return f"{type(self).__name__}({self.aval})"


class Zero(_TypeOnly):
    """A tangent or cotangent known to be zero: only its type is kept."""

    __slots__ = ()

    @staticmethod
    def from_primal_value(x) -> Zero:
        return Zero(get_aval(x))


def instantiate_zeros(t):
    """An array for a tangent, made of zeros if it was a symbolic zero."""
    return zeros_like_aval(t.aval) if type(t) is Zero else t


# Tangents and cotangents are summed with their own primitive, printed `add_any`.
add_jaxvals_p = Primitive("add_any")
add_jaxvals_p.def_impl(np.add)
add_jaxvals_p.def_abstract_eval(lambda x, y: x)


def add_tangents(x, y):
    if type(x) is Zero:
        return y
    if type(y) is Zero:
        return x
    return add_jaxvals_p.bind(x, y)


# ---------------------------------------------------------------------------
# Forward mode and linearization.


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent", "aval")

    def __init__(self, trace: Trace, primal, tangent, aval: ShapedArray | None = None):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent
        self.aval = get_aval(primal) if aval is None else aval

    def to_concrete_value(self):
        # Forward mode keeps the primal, so Python control flow on it works.
        primal = self.primal
        return primal.to_concrete_value() if isinstance(primal, Tracer) else np.asarray(primal)

    def _short_repr(self) -> str:
        return f"JVPTracer(primal={short_repr(self.primal)}, tangent={short_repr(self.tangent)})"


class LinearizeTracer(JVPTracer):
    """A primal value and its tangent, a tracer of the tangent trace."""

    __slots__ = ()

    def _short_repr(self) -> str:
        tangent = get_aval(self.tangent).str_short()
        return f"GradTracer(primal={short_repr(self.primal)}, typeof(tangent)={tangent})"


class JVPTrace(Trace):
    """Carries a tangent beside each primal.  A rule's operations, on primals
    and tangents alike, go to ``rule_trace``: for forward mode, the parent."""

    tracer_type = JVPTracer

    def __init__(self, parent_trace: Trace, tag: TraceTag):
        super().__init__(parent_trace, tag)
        self.rule_trace = parent_trace

    def to_primal_tangent_pair(self, x) -> tuple[Any, Any]:
        """Its own tracers are unpacked; any other value is a constant: zero tangent."""
        if isinstance(x, JVPTracer) and x._trace.tag is self.tag:
            return x.primal, x.tangent
        return x, Zero.from_primal_value(x)

    def new_tracer(self, primal, tangent):
        """A tracer, unless the tangent is zero: then the primal is enough.  So is it
        for a primal that is not a float: integers and booleans do not vary
        continuously, their tangent is zero (JAX's float0), and no rule ever sees
        tangent arithmetic on them (converting a float tangent to int, say)."""
        if type(tangent) is Zero:
            return primal
        aval = get_aval(primal)
        return primal if aval.dtype.kind != "f" else self.tracer_type(self, primal, tangent, aval)

    def process_primitive(self, primitive, args, params):
        # Written out rather than with to_primal_tangent_pair: every operation under
        # jvp, linearize and grad passes here.
        primals, tangents, all_zero = [], [], True
        for x in args:
            if isinstance(x, JVPTracer) and x._trace.tag is self.tag:
                primals.append(x.primal)
                tangents.append(x.tangent)
                all_zero = False
            else:  # a constant: zero tangent
                primals.append(x)
                tangents.append(Zero(get_aval(x)))
        if all_zero:
            return primitive.bind_with_trace(self.parent_trace, primals, params)
        rule = primitive_jvps.get(primitive)
        if rule is not None:
            with set_current_trace(self.rule_trace):
                primal_out, tangent_out = rule(primals, tangents, **params)
        elif primitive in tangent_rules:
            # The primal output is the primitive's own, made in the parent right away;
            # only the tangent needs the rule.
            primal_out = primitive.bind_with_trace(self.parent_trace, primals, params)
            with set_current_trace(self.rule_trace):
                tangent_out = tangent_rules[primitive](primal_out, primals, tangents, **params)
        else:
            raise NotImplementedError(f"Differentiation rule for '{primitive}' not implemented")
        if primitive.multiple_results:
            return [self.new_tracer(p, t) for p, t in zip(primal_out, tangent_out)]
        return self.new_tracer(primal_out, tangent_out)

    def process_custom_jvp_call(self, primitive, fun, jvp, args, **params):
        primals, tangents = zip(*map(self.to_primal_tangent_pair, args))
        if all(type(t) is Zero for t in tangents):
            return primitive.bind_with_trace(self.parent_trace, (fun, jvp, *primals), params)
        if not params["symbolic_zeros"]:
            with set_current_trace(self.parent_trace):  # the zeros are the parent's values
                tangents = [instantiate_zeros(t) for t in tangents]
        with set_current_trace(self.rule_trace):  # the rule replaces differentiating fun
            outs = jvp(*primals, *tangents)
        half = len(outs) // 2
        return [self.new_tracer(p, t) for p, t in zip(outs[:half], outs[half:])]

    def process_custom_vjp_call(self, primitive, fun, fwd, bwd, args, **params):
        primals, tangents = zip(*map(self.to_primal_tangent_pair, args))
        if all(type(t) is Zero for t in tangents):
            return primitive.bind_with_trace(self.parent_trace, (fun, fwd, bwd, *primals), params)
        if any(type(t) is not Zero for t in tangents[:params.get("num_consts", 0)]):
            raise CustomVJPException()  # bwd gives no cotangent for fun's closed-over values
        with set_current_trace(self.parent_trace):  # fwd gives the output and the residuals
            outs_and_residuals = fwd(*primals, *[type(t) is not Zero for t in tangents])
            tangents = [instantiate_zeros(t) for t in tangents]
        num_out = params["out_tree"].get().num_leaves
        outs, residuals = outs_and_residuals[:num_out], outs_and_residuals[num_out:]
        # The tangent is custom_lin: a linear primitive whose transpose is bwd.
        with set_current_trace(self.rule_trace):
            tangents_out = custom_lin_p.bind(
                *residuals, *tangents, num_res=len(residuals), bwd=bwd,
                out_avals=tuple(get_aval(o) for o in outs),
                symbolic_zeros=params["symbolic_zeros"])
        return [self.new_tracer(p, t) for p, t in zip(outs, tangents_out)]


class LinearizeTrace(JVPTrace):
    """Forward mode whose rules run with the tangent trace current: primal work
    happens now, in the parent; tangent work is staged into a linear jaxpr."""

    tracer_type = LinearizeTracer

    def __init__(self, parent_trace: Trace, tangent_trace: PartialEvalTrace, tag: TraceTag):
        super().__init__(parent_trace, tag)
        self.rule_trace = self.tangent_trace = tangent_trace


def jvp_flat(f: Callable, primals: list, tangents: list,
             instantiate: bool = True) -> tuple[list, list]:
    """Run ``f`` (flat in, flat out) on primals carrying tangents (arrays or
    ``Zero``s).  Tangents of outputs that do not depend on the inputs are
    ``Zero`` unless ``instantiate``."""
    with take_current_trace() as parent:
        trace = JVPTrace(parent, TraceTag())
        tracers = [trace.new_tracer(p, t) for p, t in zip(primals, tangents)]
        with set_current_trace(trace):
            outs = f(*tracers)
        pairs = [trace.to_primal_tangent_pair(out) for out in outs]
    return [p for p, _ in pairs], [instantiate_zeros(t) if instantiate else t for _, t in pairs]


def linearize_flat(f: Callable, primals: list) -> tuple[list, list[bool], Jaxpr, list]:
    """The outputs of ``f`` at ``primals`` and its linearization: a jaxpr from the
    input tangents to the output tangents that are not zero (marked in the list
    of flags), with its constants, the residuals."""
    with take_current_trace() as parent:
        tag = TraceTag()
        tangent_trace = PartialEvalTrace(parent, tag)
        trace = LinearizeTrace(parent, tangent_trace, tag)
        tangents_in = [tangent_trace.new_arg(get_aval(p)) for p in primals]
        tracers = [trace.new_tracer(p, t) for p, t in zip(primals, tangents_in)]
        with set_current_trace(trace):
            outs = f(*tracers)
        pairs = [trace.to_primal_tangent_pair(out) for out in outs]
    nonzeros = [type(t) is not Zero for _, t in pairs]
    # Scalar residuals stay constants (no literals: nobody prints this jaxpr).
    jaxpr, residuals = tangent_trace.to_jaxpr(
        tangents_in, [t for _, t in pairs if type(t) is not Zero], literals=False)
    tangent_trace.invalidate()
    return [p for p, _ in pairs], nonzeros, dce_jaxpr(jaxpr), residuals


@cache_per_jaxpr
def jvp_jaxpr(jaxpr: Jaxpr, nonzeros: tuple[bool, ...],
              instantiate: bool | tuple[bool, ...] = False) -> tuple[Jaxpr, list, list[bool]]:
    """A jaxpr from (inputs, their nonzero tangents) to (outputs, their nonzero
    tangents, and the tangents ``instantiate`` asks for: all if True, or one flag
    per output); also its constants and which output tangents it returns."""
    n = len(jaxpr.invars)
    out_nonzeros: list[bool] = []
    if not isinstance(instantiate, tuple):
        instantiate = (instantiate,) * len(jaxpr.outvars)

    def jvp_traceable(*args):
        nz_tangents = iter(args[n:])
        tangents = [next(nz_tangents) if nz else Zero(aval)
                    for nz, aval in zip(nonzeros, jaxpr.in_avals)]
        primals_out, tangents_out = jvp_flat(jaxpr_as_fun(jaxpr), args[:n], tangents, False)
        tangents_out = [instantiate_zeros(t) if inst else t
                        for t, inst in zip(tangents_out, instantiate)]
        out_nonzeros[:] = [type(t) is not Zero for t in tangents_out]
        return [*primals_out, *[t for t in tangents_out if type(t) is not Zero]]

    tangent_avals = [a for a, nz in zip(jaxpr.in_avals, nonzeros) if nz]
    new_jaxpr, consts = trace_to_jaxpr(jvp_traceable, jaxpr.in_avals + tangent_avals)
    return convert_constvars_jaxpr(new_jaxpr), consts, out_nonzeros


# ---------------------------------------------------------------------------
# JVP rules.  A rule in ``primitive_jvps`` takes (primals, tangents, **params),
# tangents possibly Zero, and returns (primal_out, tangent_out).  Most primitives
# need less: their primal output is the primitive applied to the primals, so they
# have a tangent rule instead, (primal_out, primals, tangents, **params) ->
# tangent_out, made from one function per operand giving that operand's
# contribution.  (JAX also keeps primal and tangent work apart when linearizing,
# with richer rules, in ``primitive_linearizations``.)

primitive_jvps: dict = {}
tangent_rules: dict = {}


def defjvp(primitive: Primitive, *rules: Callable | None) -> None:
    """``rule(g, *primals, **params)``: the contribution of the operand whose
    tangent is g.  Zero tangents contribute nothing; the others are summed."""
    tangent_rules[primitive] = lambda out, primals, tangents, **params: _sum_tangents(
        out, [rule(t, *primals, **params) for rule, t in zip(rules, tangents)
              if rule and type(t) is not Zero])


def defjvp2(primitive: Primitive, *rules: Callable | None) -> None:
    """As ``defjvp``, the rules also getting the output: ``rule(g, ans, *primals)``."""
    tangent_rules[primitive] = lambda out, primals, tangents, **params: _sum_tangents(
        out, [rule(t, out, *primals, **params) for rule, t in zip(rules, tangents)
              if rule and type(t) is not Zero])


def _sum_tangents(out, contributions: list):
    return functools.reduce(add_tangents, contributions) if contributions else Zero(get_aval(out))


def deflinear(primitive: Primitive) -> None:
    """A primitive linear in all its operands: its tangent is itself applied to
    the tangents (a rule never runs with every tangent zero)."""
    tangent_rules[primitive] = lambda out, primals, tangents, **params: primitive.bind(
        *map(instantiate_zeros, tangents), **params)


def _one(x):
    return lax.full_like(x, 1)


def _mask_like(mask, x):
    """A boolean mask as 0s and 1s of ``x``'s dtype and weak type."""
    aval = get_aval(x)
    return lax.convert_element_type(mask, aval.dtype, aval.weak_type)


for _p in (lax.neg_p, lax.reduce_sum_p, lax.broadcast_in_dim_p, lax.reshape_p,
           lax.squeeze_p, lax.transpose_p, lax.rev_p, lax.slice_p, lax.pad_p,
           lax.concatenate_p, lax.convert_element_type_p, add_jaxvals_p):
    deflinear(_p)
# Derivatives that are zero wherever they exist: no operand contributes.
for _p in (lax.sign_p, lax.floor_p, lax.ceil_p, lax.round_p, lax.is_finite_p, lax.lt_p,
           lax.le_p, lax.gt_p, lax.ge_p, lax.eq_p, lax.ne_p, lax.stop_gradient_p):
    defjvp(_p)

def _as_array(g):
    """A tangent handed on unchanged is an array, as JAX's add and sub rules make it."""
    return g if isinstance(g, (Tracer, Array)) else to_array(g)


def _add_sub_tangent(combine: Callable, negate: Callable) -> Callable:
    """As in JAX, two tangents are combined with the primitive itself (``add``, not
    ``add_any``), and a lone tangent of y is handed on (negated for ``sub``)."""
    def tangent(out, primals, tangents):
        x_dot, y_dot = tangents
        if type(y_dot) is Zero:
            return _as_array(x_dot)
        return negate(y_dot) if type(x_dot) is Zero else combine(x_dot, y_dot)
    return tangent


tangent_rules[lax.add_p] = _add_sub_tangent(lax.add, _as_array)
tangent_rules[lax.sub_p] = _add_sub_tangent(lax.sub, lax.neg)
defjvp(lax.mul_p, lambda g, x, y: lax.mul(g, y), lambda g, x, y: lax.mul(x, g))
defjvp(lax.div_p, lambda g, x, y: lax.div(g, y),
       lambda g, x, y: lax.mul(lax.mul(lax.neg(g), x), lax.integer_pow(y, -2)))
defjvp(lax.sin_p, lambda g, x: lax.mul(g, lax.cos(x)))
defjvp(lax.cos_p, lambda g, x: lax.neg(lax.mul(g, lax.sin(x))))
defjvp2(lax.tan_p, lambda g, y, x: lax.mul(g, lax.add(_one(y), lax.mul(y, y))))
defjvp2(lax.tanh_p, lambda g, y, x: lax.mul(g, lax.sub(_one(y), lax.mul(y, y))))
defjvp2(lax.exp_p, lambda g, y, x: lax.mul(g, y))
defjvp(lax.log_p, lambda g, x: lax.div(g, x))
defjvp(lax.log1p_p, lambda g, x: lax.div(g, lax.add(x, _one(x))))
defjvp2(lax.expm1_p, lambda g, y, x: lax.mul(g, lax.add(y, _one(y))))
defjvp2(lax.sqrt_p, lambda g, y, x: lax.mul(g, lax.div(lax.full_like(y, 0.5), y)))
defjvp(lax.abs_p, lambda g, x: lax.select_n(lax.ge(x, lax.zeros_like(x)), lax.neg(g), g))
def _replace_zero(x):
    """``x`` with ones where it is zero."""
    return lax.select_n(lax.eq(x, lax.zeros_like(x)), x, _one(x))


def _pow_jvp_lhs(g, ans, x, y):
    integer_y = get_aval(y).dtype.kind in "iu"
    dtype = get_aval(ans).dtype  # both operands strongly typed, as in JAX
    x, y = lax.convert_element_type(x, dtype), lax.convert_element_type(y, dtype)
    if not integer_y:
        return lax.mul(g, lax.mul(y, lax.pow(x, lax.sub(y, _one(y)))))
    # An integer power 0 has derivative 0, even at x = 0, where y * x ** (y - 1) is nan.
    y_is_0 = lax.eq(y, lax.zeros_like(y))
    jac = lax.select_n(y_is_0, lax.mul(_replace_zero(y), lax.pow(x, lax.sub(y, _one(y)))),
                       lax.zeros_like(y))
    return lax.mul(g, jac)


def _pow_jvp_rhs(g, ans, x, y):
    # log(x) is needed only for y's tangent; at x = 0 it is replaced by 0.
    log_x = lax.log(_replace_zero(x))
    # Strongly typed, as in JAX, even when y is weakly typed.
    return lax.convert_element_type(lax.mul(g, lax.mul(log_x, ans)), get_aval(y).dtype)


defjvp2(lax.pow_p, _pow_jvp_lhs, _pow_jvp_rhs)
defjvp(lax.dot_general_p,
       lambda g, x, y, **params: lax.dot_general_p.bind(g, y, **params),
       lambda g, x, y, **params: lax.dot_general_p.bind(x, g, **params))


def _integer_pow_jvp(g, x, *, y):
    if y == 0:
        return lax.zeros_like(g)
    if y == 1:
        return _as_array(g)
    # As JAX's constant, y is weakly typed only beside a weakly typed scalar.
    aval = get_aval(x)
    y_like_x = lax.full_like(x, y, None if aval.weak_type and not aval.shape else aval.dtype)
    return lax.mul(g, lax.mul(y_like_x, x if y == 2 else lax.integer_pow(x, y - 1)))


defjvp(lax.integer_pow_p, _integer_pow_jvp)


def _reduce_chooser_jvp(g, y, x, *, axes):
    # Where several entries tie for the chosen value, the tangent is their average.
    kept = tuple(i for i in range(get_aval(x).ndim) if i not in axes)
    y_full = lax.broadcast_in_dim(y, get_aval(x).shape, kept)
    is_chosen = _mask_like(lax.eq(x, y_full), g)
    count = lax.reduce_sum(is_chosen, axes)
    return lax.div(lax.reduce_sum(lax.mul(g, is_chosen), axes), count)


defjvp2(lax.reduce_max_p, _reduce_chooser_jvp)
defjvp2(lax.reduce_min_p, _reduce_chooser_jvp)


def _share(x, y, pick_x, g):
    """The share of x's tangent in max/min: 1 where x is chosen, 0.5 at a tie."""
    return lax.add(_mask_like(pick_x(x, y), g),
                   lax.mul(lax.full_like(g, 0.5), _mask_like(lax.eq(x, y), g)))


def _minmax_rules(primitive, pick_x) -> None:
    defjvp(primitive, lambda g, x, y: lax.mul(g, _share(x, y, pick_x, g)),
           lambda g, x, y: lax.mul(g, _share(y, x, pick_x, g)))


_minmax_rules(lax.max_p, lax.gt)
_minmax_rules(lax.min_p, lax.lt)


# The predicate, an integer, has no tangent: the rule runs only when a case has one.
tangent_rules[lax.select_n_p] = lambda out, primals, tangents: lax.select_n(
    primals[0], *map(instantiate_zeros, tangents[1:]))


# ---------------------------------------------------------------------------
# Transposition: the backward pass over a linear jaxpr.


class UndefinedPrimal(_TypeOnly):
    """A linear input of the jaxpr being transposed: only its type is known."""

    __slots__ = ()


def is_undefined_primal(x) -> bool:
    return type(x) is UndefinedPrimal


def backward_pass(jaxpr: Jaxpr, consts: list, primals_in: list, cotangents: list) -> list:
    """The cotangents of the linear inputs of ``jaxpr`` (those given as
    ``UndefinedPrimal``), from the cotangents of its outputs (``Zero`` allowed)."""
    # What a rule is given for each operand: its value if it is known, else (a
    # linear value) an UndefinedPrimal.
    primal_env = dict(zip([*jaxpr.constvars, *jaxpr.invars], [*consts, *primals_in]))
    ct_env: dict[Var, Any] = {}

    def read_cotangent(v: Var):
        return ct_env.pop(v) if v in ct_env else Zero(v.aval)

    def write_cotangent(x, ct) -> None:
        if type(x) is Var and ct is not None and type(ct) is not Zero:
            ct_env[x] = add_tangents(ct_env[x], ct) if x in ct_env else ct

    for v, ct in zip(jaxpr.outvars, cotangents):
        write_cotangent(v, ct)
    for eqn in reversed(jaxpr.eqns):
        if ct_env.keys().isdisjoint(eqn.out_binders):
            continue  # all its output cotangents are zero
        rule = primitive_transposes.get(eqn.primitive)
        if rule is None:
            raise NotImplementedError(
                f"Transpose rule (for reverse-mode differentiation) for "
                f"'{eqn.primitive}' not implemented")
        cts_in = [read_cotangent(v) for v in eqn.out_binders]
        primals = [x.val if type(x) is Literal else primal_env[x] if x in primal_env
                   else UndefinedPrimal(x.aval) for x in eqn.inputs]
        cts_out = rule(cts_in if eqn.primitive.multiple_results else cts_in[0], *primals,
                       **eqn.params)
        for x, ct in zip(eqn.inputs, cts_out):
            write_cotangent(x, ct)
    return [read_cotangent(v) for v, val in zip(jaxpr.invars, primals_in)
            if type(val) is UndefinedPrimal]


@cache_per_jaxpr
def transpose_jaxpr(jaxpr: Jaxpr, undefined: tuple[bool, ...]) -> tuple[Jaxpr, list]:
    """A jaxpr from (the defined inputs, the output cotangents) to the cotangents
    of the undefined inputs, which are all instantiated; also its constants."""
    defined_avals = [a for a, u in zip(jaxpr.in_avals, undefined) if not u]

    def transposed(*defined_and_cts):
        defined = iter(defined_and_cts[:len(defined_avals)])
        args = [UndefinedPrimal(a) if u else next(defined)
                for a, u in zip(jaxpr.in_avals, undefined)]
        cts = backward_pass(jaxpr, [], args, list(defined_and_cts[len(defined_avals):]))
        return [instantiate_zeros(ct) for ct in cts]

    new_jaxpr, consts = trace_to_jaxpr(transposed, defined_avals + jaxpr.out_avals)
    return convert_constvars_jaxpr(new_jaxpr), consts


primitive_transposes: dict = {}


def deflinear_transpose(primitive: Primitive, transpose: Callable) -> None:
    """The transpose of a primitive linear in its one operand: ``transpose(ct, x, **params)``."""
    primitive_transposes[primitive] = lambda ct, x, **params: [transpose(ct, x, **params)]


_NONLINEAR = ("Transpose rule (for reverse-mode differentiation) for '{}' not implemented "
              "for this use: a tangent appears in it non-linearly (a JVP rule's tangent "
              "output must be linear in the input tangents)")


def _mul_transpose(ct, x, y):
    if is_undefined_primal(x) and is_undefined_primal(y):
        raise NotImplementedError(_NONLINEAR.format("mul"))
    return [lax.mul(ct, y), None] if is_undefined_primal(x) else [None, lax.mul(x, ct)]


def _div_transpose(ct, x, y):
    if is_undefined_primal(y):
        raise NotImplementedError(_NONLINEAR.format("div"))
    return [lax.div(ct, y), None]


def _broadcast_in_dim_transpose(ct, x, *, shape, broadcast_dimensions):
    # Sum over the new axes, and over the axes that were stretched from size 1.
    new_axes = tuple(i for i in range(len(shape)) if i not in broadcast_dimensions)
    stretched = tuple(dst for src, dst in enumerate(broadcast_dimensions)
                      if x.aval.shape[src] == 1 and shape[dst] != 1)
    summed = lax.reduce_sum(ct, new_axes + stretched) if new_axes + stretched else ct
    return lax.reshape(summed, x.aval.shape)


def _select_n_transpose(ct, which, *cases):
    if is_undefined_primal(which):
        raise NotImplementedError(_NONLINEAR.format("select_n"))
    zeros = lax.zeros_like(ct)
    return [None] + [lax.select_n(which, *[ct if j == i else zeros for j in range(len(cases))])
                     if is_undefined_primal(case) else None
                     for i, case in enumerate(cases)]


def _slice_transpose(ct, x, *, start_indices, limit_indices, strides):
    # ct padded back to x's shape: lo before the first element taken, the rest after
    # the last one, step - 1 between two.
    steps = strides or (1,) * len(start_indices)
    dims = zip(start_indices, x.aval.shape, get_aval(ct).shape, steps)
    config = [(lo, size - lo - ((out - 1) * step + 1 if out else 0), step - 1)
              for lo, size, out, step in dims]
    return lax.pad(ct, Array(np.zeros((), x.aval.dtype), x.aval.weak_type), config)


def _pad_transpose(ct, x, padding_value, *, padding_config):
    starts = [lo for lo, _, _ in padding_config]
    shape = get_aval(ct).shape
    limits = [size - hi for size, (_, hi, _) in zip(shape, padding_config)]
    strides = [interior + 1 for _, _, interior in padding_config]
    x_ct = lax.slice(ct, starts, limits, strides) if is_undefined_primal(x) else None
    pad_ct = None
    if is_undefined_primal(padding_value):
        inside = lax.reduce_sum(lax.slice(ct, starts, limits, strides), tuple(range(len(shape))))
        pad_ct = lax.sub(lax.reduce_sum(ct, tuple(range(len(shape)))), inside)
    return [x_ct, pad_ct]


def _concatenate_transpose(ct, *operands, dimension):
    """Each operand's cotangent is its slice of the output's."""
    shape = get_aval(ct).shape
    cts, start = [], 0
    for x in operands:
        size = (x.aval if is_undefined_primal(x) else get_aval(x)).shape[dimension]
        starts = [start if i == dimension else 0 for i in range(len(shape))]
        limits = [start + size if i == dimension else n for i, n in enumerate(shape)]
        cts.append(lax.slice(ct, starts, limits) if is_undefined_primal(x) else None)
        start += size
    return cts


def _dot_general_transpose(ct, x, y, *, dimension_numbers, preferred_element_type):
    if is_undefined_primal(x) and is_undefined_primal(y):
        raise NotImplementedError(_NONLINEAR.format("dot_general"))
    if is_undefined_primal(x):
        return [_dot_transpose_lhs(ct, x.aval, y, dimension_numbers), None]
    (lc, rc), (lb, rb) = dimension_numbers
    return [None, _dot_transpose_lhs(ct, y.aval, x, ((rc, lc), (rb, lb)), rhs_first=True)]


def _dot_transpose_lhs(ct, x_aval: ShapedArray, y, dimension_numbers, rhs_first=False):
    """Cotangent of the lhs ``x`` of ``dot_general(x, y)``: contract ``ct`` with ``y``
    over y's free axes, then put the axes back in x's order."""
    (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
    x_free = [i for i in range(x_aval.ndim) if i not in x_contract and i not in x_batch]
    y_free = [i for i in range(get_aval(y).ndim) if i not in y_contract and i not in y_batch]
    nb = len(x_batch)
    # ct's axes: batch, then the lhs's free axes, then the rhs's free axes; with
    # rhs_first, ct's free axes came from (y, x) in this order.
    y_start = nb if rhs_first else nb + len(x_free)
    dims = ((list(range(y_start, y_start + len(y_free))), y_free), (list(range(nb)), list(y_batch)))
    # result axes: batch, ct's remaining (x's free) axes, y's remaining (x's contract pairs)
    out = lax.dot_general(ct, y, dims, preferred_element_type=x_aval.dtype)
    order = list(x_batch) + x_free + [xc for _, xc in sorted(zip(y_contract, x_contract))]
    return lax.transpose(out, tuple(np.argsort(order)))


deflinear_transpose(lax.neg_p, lambda ct, x: lax.neg(ct))
deflinear_transpose(lax.convert_element_type_p, lambda ct, x, **_: lax.convert_element_type(
    ct, x.aval.dtype, x.aval.weak_type))
deflinear_transpose(lax.reduce_sum_p, lambda ct, x, *, axes: lax.broadcast_in_dim(
    ct, x.aval.shape, tuple(i for i in range(x.aval.ndim) if i not in axes)))
deflinear_transpose(lax.broadcast_in_dim_p, _broadcast_in_dim_transpose)
deflinear_transpose(lax.reshape_p, lambda ct, x, **_: lax.reshape(ct, x.aval.shape))
deflinear_transpose(lax.squeeze_p, lambda ct, x, **_: lax.reshape(ct, x.aval.shape))
deflinear_transpose(lax.transpose_p, lambda ct, x, *, permutation: lax.transpose(
    ct, tuple(np.argsort(permutation))))
deflinear_transpose(lax.slice_p, _slice_transpose)
deflinear_transpose(lax.rev_p, lambda ct, x, *, dimensions: lax.rev(ct, dimensions))
primitive_transposes.update({
    lax.add_p: lambda ct, x, y: [ct, ct],
    add_jaxvals_p: lambda ct, x, y: [ct, ct],
    lax.sub_p: lambda ct, x, y: [ct, lax.neg(ct)],
    lax.mul_p: _mul_transpose,
    lax.div_p: _div_transpose,
    lax.select_n_p: _select_n_transpose,
    lax.pad_p: _pad_transpose,
    lax.dot_general_p: _dot_general_transpose,
    lax.concatenate_p: _concatenate_transpose,
})


# ---------------------------------------------------------------------------
# custom_lin: the tangent of a custom_vjp call.  A linear primitive whose
# transpose is the user's bwd; evaluating it forward is JAX's error.

_NO_JVP = "can't apply forward-mode autodiff (jvp) to a custom_vjp function."


def _no_forward_mode(*args, **params):
    raise TypeError(_NO_JVP)


custom_lin_p = Primitive("custom_lin")
custom_lin_p.multiple_results = True
custom_lin_p.def_abstract_eval(lambda *avals, out_avals, **_: list(out_avals))
custom_lin_p.def_impl(_no_forward_mode)
# custom_lin has no JVP rule: differentiating it (jvp of jvp, say) is refused as
# for any primitive without one, with NotImplementedError, as in JAX.


def _custom_lin_transpose(cts, *args, num_res: int, bwd: Callable, out_avals, symbolic_zeros: bool):
    if not symbolic_zeros:  # otherwise bwd sees the Zeros, as SymbolicZeros
        cts = [instantiate_zeros(ct) for ct in cts]
    return [None] * num_res + list(bwd(*args[:num_res], *cts))


primitive_transposes[custom_lin_p] = _custom_lin_transpose
