"""Forward mode: Jacobian-vector products by carrying tangents beside primals.

Under ``jvp`` every value is a ``JVPTracer`` holding a primal and a tangent.
Each primitive has a rule that computes the output tangent from the input
primals and tangents; the rules below are all one-liners over minijax.lax, so
they are themselves traceable, which is what makes higher derivatives work.
"""
from __future__ import annotations

from typing import Callable

from minijax import dtypes, lax
from minijax.core import (
    Trace, Tracer, concrete_or_error, full_lower, get_aval, new_main)
from minijax.tree_util import flatten_fun, tree_flatten, tree_unflatten


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace: Trace, primal, tangent):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    @property
    def aval(self):
        return get_aval(self.primal)

    def concrete_value(self, reason):
        # Forward mode keeps the primal, so Python control flow on it works.
        return concrete_or_error(self.primal, reason)


class JVPTrace(Trace):
    def pure(self, val):
        return JVPTracer(self, val, lax.zeros_like(val))

    lift = pure

    def process_primitive(self, primitive, tracers, params):
        primals_in = [t.primal for t in tracers]
        tangents_in = [t.tangent for t in tracers]
        rule = jvp_rules.get(primitive)
        if rule is None:
            raise NotImplementedError(f"Differentiation rule for '{primitive}' not implemented")
        primals_out, tangents_out = rule(primals_in, tangents_in, **params)
        if not primitive.multiple_results:
            return JVPTracer(self, primals_out, tangents_out)
        return [JVPTracer(self, p, t) for p, t in zip(primals_out, tangents_out)]


jvp_rules: dict = {}


def jvp_flat(f: Callable, primals: list, tangents: list) -> tuple[list, list]:
    with new_main(JVPTrace) as main:
        trace = JVPTrace(main)
        tracers_in = [JVPTracer(trace, p, t) for p, t in zip(primals, tangents)]
        outs = f(*tracers_in)
        tracers_out = [trace_to_jvp_tracer(trace, out) for out in outs]
        primals_out = [full_lower(t.primal) for t in tracers_out]
        tangents_out = [full_lower(t.tangent) for t in tracers_out]
    return primals_out, tangents_out


def trace_to_jvp_tracer(trace: JVPTrace, val) -> JVPTracer:
    """An output that does not depend on the inputs has a zero tangent."""
    if isinstance(val, JVPTracer) and val._trace.main is trace.main:
        return val
    return trace.pure(val)


def jvp(fun: Callable, primals, tangents):
    """Evaluate ``fun`` at ``primals`` and its derivative along ``tangents``.

    ``primals`` and ``tangents`` are tuples (or lists) with one pytree per
    argument of ``fun``; returns ``(primals_out, tangents_out)``.
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("primal and tangent arguments to jvp must be tuples or lists; "
                        f"found {type(primals).__name__} and {type(tangents).__name__}.")
    primals_flat, in_tree = tree_flatten(tuple(primals))
    tangents_flat, tangent_tree = tree_flatten(tuple(tangents))
    if in_tree != tangent_tree:
        raise TypeError(f"primal and tangent arguments to jvp must have the same tree "
                        f"structure; primals have tree structure {in_tree} whereas "
                        f"tangents have tree structure {tangent_tree}.")
    for p, t in zip(primals_flat, tangents_flat):
        check_tangent(get_aval(p), get_aval(t))
    flat_fun, out_tree = flatten_fun(fun, in_tree)
    # The values go in as given, as in JAX: an input returned unchanged comes back
    # as the same object (a Python float stays a float).
    primals_out, tangents_out = jvp_flat(flat_fun, primals_flat, tangents_flat)
    return (tree_unflatten(out_tree.get(), primals_out),
            tree_unflatten(out_tree.get(), tangents_out))


def check_tangent(primal_aval, tangent_aval) -> None:
    if primal_aval.shape != tangent_aval.shape:
        raise ValueError(f"jvp called with different primal and tangent shapes; got "
                         f"primal shape {primal_aval.shape} and tangent shape "
                         f"{tangent_aval.shape}")
    if dtypes.is_float(primal_aval.dtype) and primal_aval.dtype != tangent_aval.dtype:
        raise TypeError(f"primal and tangent arguments to jvp do not match; dtypes must "
                        f"be equal, got {primal_aval.dtype.name} and "
                        f"{tangent_aval.dtype.name}")


# ---------------------------------------------------------------------------
# The rules.  Each takes (primals, tangents, **params) and returns
# (primal_out, tangent_out).  Most are written as a derivative function,
# ``tangent_out = rule(tangent_in, primal_out, *primals_in)``.


def _linear(primitive):
    """A primitive linear in its argument(s): its tangent is itself applied to the tangents."""
    def rule(primals, tangents, **params):
        return primitive.bind(*primals, **params), primitive.bind(*tangents, **params)
    jvp_rules[primitive] = rule


def _unary(primitive, derivative: Callable):
    """``derivative(t, y, x)`` gives the output tangent from tangent t, output y, input x."""
    def rule(primals, tangents, **params):
        (x,), (t,) = primals, tangents
        y = primitive.bind(x, **params)
        return y, derivative(t, y, x, **params)
    jvp_rules[primitive] = rule


def _one(x):
    return lax.full_like(x, 1)


def _mask_like(mask, x):
    """A boolean mask as 0s and 1s of ``x``'s dtype and weak type."""
    aval = get_aval(x)
    return lax.convert_element_type(mask, aval.dtype, aval.weak_type)


for _p in (lax.neg_p, lax.add_p, lax.sub_p, lax.reduce_sum_p, lax.broadcast_in_dim_p,
           lax.reshape_p, lax.squeeze_p, lax.transpose_p, lax.slice_p, lax.pad_p,
           lax.concatenate_p):
    _linear(_p)

_unary(lax.sin_p, lambda t, y, x: lax.mul(t, lax.cos(x)))
_unary(lax.cos_p, lambda t, y, x: lax.neg(lax.mul(t, lax.sin(x))))
_unary(lax.tan_p, lambda t, y, x: lax.mul(t, lax.add(_one(y), lax.mul(y, y))))
_unary(lax.tanh_p, lambda t, y, x: lax.mul(t, lax.sub(_one(y), lax.mul(y, y))))
_unary(lax.exp_p, lambda t, y, x: lax.mul(t, y))
_unary(lax.log_p, lambda t, y, x: lax.div(t, x))
_unary(lax.log1p_p, lambda t, y, x: lax.div(t, lax.add(x, _one(x))))
_unary(lax.expm1_p, lambda t, y, x: lax.mul(t, lax.add(y, _one(y))))
_unary(lax.sqrt_p, lambda t, y, x: lax.mul(t, lax.div(lax.full_like(y, 0.5), y)))
_unary(lax.abs_p, lambda t, y, x: lax.select_n(lax.ge(x, lax.zeros_like(x)), lax.neg(t), t))
# Piecewise constant: the derivative is 0 wherever it exists.
for _p in (lax.sign_p, lax.floor_p, lax.ceil_p, lax.round_p):
    _unary(_p, lambda t, y, x: lax.zeros_like(y))
_unary(lax.convert_element_type_p,
       lambda t, y, x, *, new_dtype, weak_type: lax.convert_element_type(t, new_dtype, weak_type))
_unary(lax.reduce_max_p, lambda t, y, x, *, axes: _reduce_chooser_tangent(t, y, x, axes))
_unary(lax.reduce_min_p, lambda t, y, x, *, axes: _reduce_chooser_tangent(t, y, x, axes))


def _integer_pow_jvp(primals, tangents, *, y):
    (x,), (t,) = primals, tangents
    out = lax.integer_pow(x, y)
    if y == 0:
        return out, lax.zeros_like(out)
    slope = lax.mul(lax.full_like(x, y), lax.integer_pow(x, y - 1) if y != 1 else _one(x))
    return out, lax.mul(t, slope)


jvp_rules[lax.integer_pow_p] = _integer_pow_jvp


def _reduce_chooser_tangent(t, y, x, axes):
    # Where several entries tie for the chosen value, the tangent is their average.
    kept = tuple(i for i in range(get_aval(x).ndim) if i not in axes)
    y_full = lax.broadcast_in_dim(y, get_aval(x).shape, kept)
    is_max = _mask_like(lax.eq(x, y_full), t)
    count = lax.reduce_sum(is_max, axes)
    return lax.div(lax.reduce_sum(lax.mul(t, is_max), axes), count)


def _mul_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    return lax.mul(x, y), lax.add(lax.mul(tx, y), lax.mul(x, ty))


def _div_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = lax.div(x, y)
    return out, lax.sub(lax.div(tx, y), lax.mul(lax.div(out, y), ty))


def _pow_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = lax.pow(x, y)
    dx = lax.mul(y, lax.pow(x, lax.sub(y, _one(y))))
    # log(x) is nan for x < 0; only use it where y actually varies.
    dy = lax.mul(out, lax.log(lax.select_n(lax.eq(x, lax.zeros_like(x)), x, _one(x))))
    return out, lax.add(lax.mul(tx, dx), lax.mul(ty, dy))


def _minmax_jvp(primitive, pick_x):
    # At a tie the tangent is split evenly between the operands, as in JAX.
    def rule(primals, tangents):
        (x, y), (tx, ty) = primals, tangents
        half = lax.full_like(tx, 0.5)
        x_wins = _mask_like(pick_x(x, y), tx)
        tie = _mask_like(lax.eq(x, y), tx)
        x_share = lax.add(x_wins, lax.mul(half, tie))
        y_share = lax.sub(_one(x_share), x_share)
        return primitive.bind(x, y), lax.add(lax.mul(tx, x_share), lax.mul(ty, y_share))
    jvp_rules[primitive] = rule


def _select_n_jvp(primals, tangents):
    which, *cases = primals
    return lax.select_n(which, *cases), lax.select_n(which, *tangents[1:])


def _comparison_jvp(primitive):
    def rule(primals, tangents):
        out = primitive.bind(*primals)
        return out, lax.zeros_like(out)
    jvp_rules[primitive] = rule


def _dot_general_jvp(primals, tangents, **params):
    (x, y), (tx, ty) = primals, tangents
    out = lax.dot_general_p.bind(x, y, **params)
    return out, lax.add(lax.dot_general_p.bind(tx, y, **params),
                        lax.dot_general_p.bind(x, ty, **params))


jvp_rules[lax.mul_p] = _mul_jvp
jvp_rules[lax.div_p] = _div_jvp
jvp_rules[lax.pow_p] = _pow_jvp
jvp_rules[lax.select_n_p] = _select_n_jvp
jvp_rules[lax.dot_general_p] = _dot_general_jvp
_minmax_jvp(lax.max_p, lax.gt)
_minmax_jvp(lax.min_p, lax.lt)
for _p in (lax.lt_p, lax.le_p, lax.gt_p, lax.ge_p, lax.eq_p, lax.ne_p):
    _comparison_jvp(_p)
