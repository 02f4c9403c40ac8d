"""Batching (JAX's ``interpreters/batching.py``): ``vmap`` as a transformation.

Under ``vmap`` a value that depends on the mapped inputs is a ``BatchTracer``:
one array holding every example's value, and the position of the batch axis
in it.  ``BatchTrace`` applies each primitive once to the whole batch with the
primitive's *batching rule*, which says where the batch axis of the result
ends up.  A function ``vmap`` is applied to never sees the batch axis.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from minijax.lax import lax
from minijax.ad import Zero, add_jaxvals_p, custom_lin_p
from minijax.core import (
    Trace, TraceTag, Tracer, get_aval, set_current_trace, take_current_trace)
from minijax.jaxpr import Jaxpr, cache_per_jaxpr, convert_constvars_jaxpr, jaxpr_as_fun
from minijax.partial_eval import trace_to_jaxpr

not_mapped = None


class BatchTracer(Tracer):
    __slots__ = ("val", "batch_dim")

    def __init__(self, trace: Trace, val, batch_dim: int):
        self._trace = trace
        self.val = val
        self.batch_dim = batch_dim

    @property
    def aval(self):
        return _unbatched(get_aval(self.val), self.batch_dim)

    def _short_repr(self) -> str:
        return f"VmapTracer(aval={self.aval}, batched={get_aval(self.val)})"


class BatchTrace(Trace):
    """Applies primitives to whole batches, tracking where each batch axis is."""

    def __init__(self, parent_trace: Trace, tag: TraceTag | None, axis_size: int):
        super().__init__(parent_trace, tag)
        self.axis_size = axis_size

    def to_batch_info(self, x) -> tuple[Any, int | None]:
        """Its own tracers are unpacked; any other value is the same for every example."""
        if isinstance(x, BatchTracer) and x._trace.tag is self.tag:
            return x.val, x.batch_dim
        return x, not_mapped

    def new_tracer(self, val, dim):
        return val if dim is not_mapped else BatchTracer(self, val, dim)

    def process_primitive(self, primitive, args, params):
        vals, dims = zip(*map(self.to_batch_info, args)) if args else ((), ())
        if all(d is not_mapped for d in dims):
            return primitive.bind_with_trace(self.parent_trace, vals, params)
        rule = primitive_batchers.get(primitive)
        if rule is None:
            raise NotImplementedError(f"Batching rule for '{primitive}' not implemented")
        with set_current_trace(self.parent_trace):
            vals_out, dims_out = rule(self.axis_size, vals, dims, **params)
        if primitive.multiple_results:
            return [self.new_tracer(v, d) for v, d in zip(vals_out, dims_out)]
        return self.new_tracer(vals_out, dims_out)

    def process_custom_jvp_call(self, primitive, fun, jvp, args, **params):
        # Even with no batched argument, fun and the rule may close over batched
        # values: they run batched too, under traces with this trace's tag.
        vals, dims = zip(*map(self.to_batch_info, args)) if args else ((), ())
        batch = functools.partial(batch_subtrace, self.tag, self.axis_size)
        # Tangents come batched as their primals; outputs of both are batched at
        # axis 0, so the batched rule matches the batched function.
        outs = primitive.bind_with_trace(
            self.parent_trace, (batch(fun, dims), batch(jvp, dims * 2), *vals), params)
        return [BatchTracer(self, o, 0) for o in outs]

    def process_custom_vjp_call(self, primitive, fun, fwd, bwd, args, **params):
        vals, dims = zip(*map(self.to_batch_info, args)) if args else ((), ())
        batch = functools.partial(batch_subtrace, self.tag, self.axis_size)

        @functools.wraps(bwd)
        def bwd_batched(*residuals_and_cts):
            # Each input's cotangent in the layout of that input: its batch axis where
            # the input has it, or, for an input that is not batched (one value shared
            # by the whole batch), the sum over the batch.
            return [lax.reduce_sum(ct, (0,)) if d is not_mapped
                    else move_batch_axis(self.axis_size, 0, d, ct)
                    for ct, d in zip(batch(bwd)(*residuals_and_cts), dims)]

        # fwd's outputs and residuals, and bwd's inputs, are all batched at axis 0,
        # so the batched rules agree with each other.
        outs = primitive.bind_with_trace(
            self.parent_trace, (batch(fun, dims), batch(fwd, dims + (not_mapped,) * len(dims)),
                                bwd_batched, *vals), params)
        return [BatchTracer(self, o, 0) for o in outs]


primitive_batchers: dict = {}


def vmap_flat(f: Callable, axis_size: int, in_dims, args, tag: TraceTag | None = None
              ) -> tuple[list, list]:
    """Run ``f`` (flat in, flat out) batched; returns its outputs and their batch
    axes.  Given a ``tag``, tracers of earlier traces with that tag, which ``f``
    may close over, are batched values too."""
    with take_current_trace() as parent:
        trace = BatchTrace(parent, tag, axis_size)
        with set_current_trace(trace):
            outs = f(*[trace.new_tracer(x, d) for x, d in zip(args, in_dims)])
        infos = [trace.to_batch_info(out) for out in outs]
        trace.invalidate()
    return [v for v, _ in infos], [d for _, d in infos]


def batch_subtrace(tag: TraceTag | None, axis_size: int, f: Callable, in_dims=None) -> Callable:
    """``f`` (flat in, flat out) batched, with every output's batch axis at 0.

    ``in_dims`` gives the inputs' batch axes; None means all at axis 0.  Symbolic
    zeros, which custom rules may take and return, are not batched: they lose
    their batch axis on the way in, and get it back at 0 on the way out.
    """
    @functools.wraps(f)
    def f_batched(*args):
        dims = list(in_dims) if in_dims is not None else [0] * len(args)
        args = [Zero(_unbatched(x.aval, d)) if type(x) is Zero else x for x, d in zip(args, dims)]
        dims = [not_mapped if type(x) is Zero else d for x, d in zip(args, dims)]
        outs, out_dims = vmap_flat(f, axis_size, dims, args, tag)
        return [Zero(o.aval.update(shape=(axis_size, *o.aval.shape))) if type(o) is Zero
                else move_batch_axis(axis_size, d, 0, o) for o, d in zip(outs, out_dims)]
    return f_batched


def _unbatched(aval, dim):
    return aval if dim is not_mapped else aval.update(shape=aval.shape[:dim] + aval.shape[dim + 1:])


def move_batch_axis(axis_size: int, src, dst, x):
    """Put the batch axis of ``x`` (at ``src``, or absent) at position ``dst``."""
    if src == dst:
        return x
    if src is not_mapped:
        shape = list(get_aval(x).shape)
        shape.insert(dst, axis_size)
        return lax.broadcast_in_dim(x, tuple(shape),
                                    tuple(i for i in range(len(shape)) if i != dst))
    perm = [i for i in range(get_aval(x).ndim) if i != src]
    perm.insert(dst, src)
    # JAX calls the value's own transpose method: a NumPy array stays a NumPy array.
    return x.transpose(perm) if isinstance(x, np.ndarray) else lax.transpose(x, tuple(perm))


# ---------------------------------------------------------------------------
# Batching rules: (axis_size, values, batch dims, **params) -> (values, batch dims).


def _at_front(axis_size: int, x, dim):
    return move_batch_axis(axis_size, dim, 0, x)


def _shift(axes) -> tuple:
    """Axes of one example, as counted in the batch with its batch axis at the front."""
    return tuple(a + 1 for a in axes)


def _elementwise_rule(primitive):
    """Elementwise primitives: line the batch axes up at the front, then apply.
    (Operands have equal per-example shapes: minijax.numpy broadcast them.)"""
    def rule(axis_size, vals, dims, **params):
        if len(vals) == 1:
            return primitive.bind(vals[0], **params), dims[0]
        vals = [_at_front(axis_size, v, d) for v, d in zip(vals, dims)]
        return primitive.bind(*vals, **params), 0
    primitive_batchers[primitive] = rule


def _select_n_rule(axis_size, vals, dims):
    (which, *cases), (which_dim, *case_dims) = vals, dims
    cases = [_at_front(axis_size, c, d) for c, d in zip(cases, case_dims)]
    if which_dim is not not_mapped or get_aval(which).ndim:  # else one predicate for all
        which = _at_front(axis_size, which, which_dim)
        # A scalar predicate per example is spread over that example's elements.
        which = lax.broadcast_in_dim(which, cases[0].shape, tuple(range(get_aval(which).ndim)))
    return lax.select_n(which, *cases), 0


def _at_front_rule(primitive, shifted: Callable[..., dict]) -> None:
    """Primitives whose operands all get their batch axis at the front, and whose
    parameters, ``shifted(axis_size, **params)``, then count that axis too."""
    def rule(axis_size, vals, dims, **params):
        vals = [_at_front(axis_size, v, d) for v, d in zip(vals, dims)]
        return primitive.bind(*vals, **shifted(axis_size, **params)), 0
    primitive_batchers[primitive] = rule


def _reduce_rule(primitive):
    """A reduction over some axes of each example reduces the batch, its batch axis
    at the front, over those axes shifted by one."""
    _at_front_rule(primitive, lambda axis_size, axes: dict(axes=_shift(axes)))


def _broadcast_in_dim_rule(axis_size, vals, dims, *, shape, broadcast_dimensions):
    x = _at_front(axis_size, vals[0], dims[0])
    return lax.broadcast_in_dim(x, (axis_size, *shape), (0, *_shift(broadcast_dimensions))), 0


def _rev_rule(axis_size, vals, dims, *, dimensions):
    # The batch axis stays where it is; the reversed axes after it move up by one.
    (x,), (d,) = vals, dims
    return lax.rev(x, tuple(i + 1 if i >= d else i for i in dimensions)), d


def _pad_rule(axis_size, vals, dims, *, padding_config):
    (x, padding_value), (d, pad_dim) = vals, dims
    if pad_dim is not not_mapped:
        raise NotImplementedError("batching pad with a per-example padding value")
    return lax.pad(_at_front(axis_size, x, d), padding_value, ((0, 0, 0), *padding_config)), 0


def _dot_general_rule(axis_size, vals, dims, *, dimension_numbers, preferred_element_type):
    (x, y), (x_dim, y_dim) = vals, dims
    (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
    if x_dim is not not_mapped and y_dim is not not_mapped:
        # Both batched: the vmapped axis becomes one more batch axis of dot_general.
        x, y = _at_front(axis_size, x, x_dim), _at_front(axis_size, y, y_dim)
        numbers = ((_shift(x_contract), _shift(y_contract)),
                   ((0, *_shift(x_batch)), (0, *_shift(y_batch))))
        return lax.dot_general(x, y, numbers, preferred_element_type), 0
    if x_dim is not not_mapped:
        # Only x: its vmapped axis is a free axis, the first of x's free axes.
        x = _at_front(axis_size, x, x_dim)
        numbers = ((_shift(x_contract), y_contract), (_shift(x_batch), y_batch))
        return lax.dot_general(x, y, numbers, preferred_element_type), len(x_batch)
    y = _at_front(axis_size, y, y_dim)
    x_free = get_aval(x).ndim - len(x_contract) - len(x_batch)
    numbers = ((x_contract, _shift(y_contract)), (x_batch, _shift(y_batch)))
    return lax.dot_general(x, y, numbers, preferred_element_type), len(x_batch) + x_free


@cache_per_jaxpr
def vmap_jaxpr(jaxpr: Jaxpr, axis_size: int, dims_in: tuple,
               instantiate: bool | tuple[bool, ...] = True) -> tuple[Jaxpr, list, list[bool]]:
    """The batched version of ``jaxpr``, its constants, and which outputs it batches
    (at axis 0): those that depend on a batched input, and those ``instantiate`` asks
    for (all if True, or one flag per output); the others are left unbatched."""
    if not isinstance(instantiate, tuple):
        instantiate = (instantiate,) * len(jaxpr.outvars)
    out_batched: list[bool] = []

    def batched(*args):
        outs, dims_out = vmap_flat(jaxpr_as_fun(jaxpr), axis_size, list(dims_in), list(args))
        out_batched[:] = [d is not not_mapped or inst for d, inst in zip(dims_out, instantiate)]
        return [move_batch_axis(axis_size, d, 0 if b else not_mapped, o)
                for o, d, b in zip(outs, dims_out, out_batched)]

    in_avals = [aval if d is not_mapped else
                aval.update(shape=aval.shape[:d] + (axis_size,) + aval.shape[d:])
                for aval, d in zip(jaxpr.in_avals, dims_in)]
    new_jaxpr, consts = trace_to_jaxpr(batched, in_avals)
    return convert_constvars_jaxpr(new_jaxpr), consts, out_batched


for _p in (lax.neg_p, lax.sign_p, lax.floor_p, lax.ceil_p, lax.round_p, lax.sin_p, lax.cos_p,
           lax.tan_p, lax.tanh_p, lax.exp_p, lax.log_p, lax.log1p_p, lax.expm1_p, lax.sqrt_p,
           lax.abs_p, lax.is_finite_p, lax.add_p, lax.sub_p, lax.mul_p, lax.div_p, lax.max_p,
           lax.min_p, lax.pow_p, lax.lt_p, lax.le_p, lax.gt_p, lax.ge_p, lax.eq_p, lax.ne_p,
           lax.integer_pow_p, lax.convert_element_type_p, lax.stop_gradient_p, add_jaxvals_p):
    _elementwise_rule(_p)
for _p in (lax.reduce_sum_p, lax.reduce_max_p, lax.reduce_min_p):
    _reduce_rule(_p)
primitive_batchers.update({
    lax.select_n_p: _select_n_rule,
    lax.broadcast_in_dim_p: _broadcast_in_dim_rule,
    lax.rev_p: _rev_rule,
    lax.pad_p: _pad_rule,
    lax.dot_general_p: _dot_general_rule,
})
_at_front_rule(lax.reshape_p, lambda n, new_sizes: dict(new_sizes=(n, *new_sizes)))
_at_front_rule(lax.squeeze_p, lambda n, dimensions: dict(dimensions=_shift(dimensions)))
_at_front_rule(lax.transpose_p, lambda n, permutation: dict(permutation=(0, *_shift(permutation))))
_at_front_rule(lax.slice_p, lambda n, start_indices, limit_indices, strides: dict(
    start_indices=(0, *start_indices), limit_indices=(n, *limit_indices),
    strides=None if strides is None else (1, *strides)))
_at_front_rule(lax.concatenate_p, lambda n, dimension: dict(dimension=dimension + 1))
# Evaluating custom_lin raises JAX's error, batched or not.
primitive_batchers[custom_lin_p] = lambda n, vals, dims, **ps: custom_lin_p.impl(*vals, **ps)
