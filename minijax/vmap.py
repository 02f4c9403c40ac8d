"""vmap: write a function for one example, run it on a batch.

Under ``vmap`` every value is a ``BatchTracer``: an array with one extra axis,
the *batch dimension* (or ``None`` when the value is the same for every
example).  Each primitive has a batching rule that applies it to the whole
batch at once, usually by moving the batch axis somewhere the primitive can
carry it along.  The function itself runs only once.
"""
from __future__ import annotations

import collections
import functools
import inspect
from typing import Any, Callable

from minijax import lax
from minijax.core import Trace, Tracer, concrete_or_error, full_lower, full_raise, get_aval, new_main
from minijax.jaxpr import Jaxpr, cache_per_jaxpr, closure_convert, jaxpr_as_fun, trace_to_jaxpr
from minijax.jit import jit_p
from minijax.tree_util import (
    broadcast_prefix, flatten_fun, leaf_paths, tree_flatten, tree_unflatten)

not_mapped = None


class BatchTracer(Tracer):
    __slots__ = ("val", "batch_dim")

    def __init__(self, trace: Trace, val, batch_dim: int | None):
        self._trace = trace
        self.val = val
        self.batch_dim = batch_dim

    @property
    def aval(self):
        aval = get_aval(self.val)
        if self.batch_dim is not_mapped:
            return aval
        return aval.update(shape=aval.shape[:self.batch_dim] + aval.shape[self.batch_dim + 1:])

    def full_lower(self):
        return full_lower(self.val) if self.batch_dim is not_mapped else self

    def concrete_value(self, reason):
        if self.batch_dim is not_mapped:
            return concrete_or_error(self.val, reason)
        return super().concrete_value(reason)  # one value per example: no single answer


class BatchTrace(Trace):
    def pure(self, val):
        return BatchTracer(self, val, not_mapped)

    lift = pure

    @property
    def axis_size(self) -> int:
        return self.main.global_data

    def process_primitive(self, primitive, tracers, params):
        vals_in = [t.val for t in tracers]
        dims_in = [t.batch_dim for t in tracers]
        rule = vmap_rules.get(primitive)
        if rule is None:
            raise NotImplementedError(f"no batching rule for {primitive}")
        vals_out, dims_out = rule(self.axis_size, vals_in, dims_in, **params)
        if not primitive.multiple_results:
            return BatchTracer(self, vals_out, dims_out)
        return [BatchTracer(self, v, d) for v, d in zip(vals_out, dims_out)]


vmap_rules: dict = {}


def vmap_flat(f: Callable, axis_size: int, in_axes: list, args: list) -> tuple[list, list]:
    """Run ``f`` batched; returns its outputs and their batch dimensions."""
    with new_main(BatchTrace, axis_size) as main:
        trace = BatchTrace(main)
        tracers_in = [BatchTracer(trace, x, ax) if ax is not not_mapped else x
                      for x, ax in zip(args, in_axes)]
        outs = f(*tracers_in)
        tracers_out = [full_raise(trace, out) for out in outs]
        return [t.val for t in tracers_out], [t.batch_dim for t in tracers_out]


def _axis_size(fun: Callable, args: tuple, args_flat: list, in_axes: list,
               axis_size: int | None) -> int:
    """The size of the mapped axes, which must all agree (with axis_size, if given)."""
    sizes = [get_aval(x).shape[ax] if ax is not not_mapped else None
             for x, ax in zip(args_flat, in_axes)]
    distinct = {s for s in sizes if s is not None} | ({axis_size} - {None})
    if len(distinct) == 1:
        return distinct.pop()
    if not distinct:
        raise ValueError("vmap must have at least one non-None value in in_axes or "
                         "axis_size must be specified")
    raise ValueError(_inconsistent_sizes(fun, args, args_flat, in_axes, sizes, axis_size))


def _inconsistent_sizes(fun, args, args_flat, in_axes, sizes, axis_size) -> str:
    """JAX's message: each size found, most common first, with an argument that has it."""
    leaves = [f"{name} of type {get_aval(x).str_short(short_dtypes=False)}"
              for name, x in zip(_leaf_names(fun, args), args_flat)]
    lines = [] if axis_size is None else [f"  * the `axis_size` argument was {axis_size}"]
    counts = collections.Counter(s for s in sizes if s is not None).most_common()
    for rank, (size, count) in enumerate(counts):
        i = sizes.index(size)
        example = f"axis {in_axes[i]} of {leaves[i]}"
        if count == 1:
            lines.append(f"  * one axis had size {size}: {example}")
        else:
            lines.append(f"  * {'most' if rank == 0 else 'some'} axes ({count} of them) "
                         f"had size {size}, e.g. {example}")
    return "vmap got inconsistent sizes for array axes to be mapped:\n" + ";\n".join(lines)


def _leaf_names(fun: Callable, args: tuple) -> list[str]:
    """Each leaf of the arguments named by its parameter and its path: ``argument p['a']``
    (``args[1]`` when the signature gives no name)."""
    try:
        params = list(inspect.signature(fun).bind(*args).signature.parameters)
    except (TypeError, ValueError):
        params = []
    return [f"argument {params[i]}{path}" if i < len(params) else f"args[{i}]{path}"
            for i, arg in enumerate(args) for path in leaf_paths(arg)]


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None) -> Callable:
    """Map ``fun`` over axis ``in_axes`` of its arguments, stacking results at ``out_axes``.

    ``in_axes`` and ``out_axes`` are an int, None (not mapped) or a pytree of
    those matching a prefix of the arguments (a tuple, one entry per argument)
    or of the outputs.  ``axis_size`` gives the size of the mapped axis, which is
    needed only when no argument is mapped.
    """
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)  # JAX accepts a list here, meaning a tuple

    @functools.wraps(fun)
    def batched_fun(*args):
        if isinstance(in_axes, tuple) and len(in_axes) != len(args):
            raise ValueError(
                f"vmap in_axes must be an int, None, or a tuple of entries corresponding "
                f"to the positional arguments passed to the function, but got "
                f"len(in_axes)={len(in_axes)}, len(args)={len(args)}")
        args_flat, in_tree = tree_flatten(args)
        axes_flat = _axes_per_leaf(in_axes if isinstance(in_axes, tuple) else
                                      (in_axes,) * len(args), args, "in_axes")
        normalized = [_normalize_axis(ax, get_aval(x).ndim, "in_axes")
                      for x, ax in zip(args_flat, axes_flat)]
        size = _axis_size(fun, args, args_flat, axes_flat, axis_size)  # axes as given
        flat_fun, out_tree = flatten_fun(fun, in_tree)
        outs, dims_out = vmap_flat(flat_fun, size, normalized, args_flat)
        out_axes_flat = _axes_per_leaf(out_axes, tree_unflatten(out_tree.get(), outs),
                                          "out_axes")
        outs = [move_batch_axis(size, src, _normalize_axis(
                    dst, get_aval(o).ndim + 1 - (src is not not_mapped), "out_axes"), o)
                for o, src, dst in zip(outs, dims_out, out_axes_flat)]
        return tree_unflatten(out_tree.get(), outs)

    return batched_fun


def batch_to_front(axis_size: int, f: Callable, in_dims: list | None = None) -> Callable:
    """``f`` (flat in, flat out) batched, with every output's batch axis at 0.

    ``in_dims`` gives the inputs' batch axes; None means all at axis 0.
    """
    @functools.wraps(f)
    def f_batched(*args):
        dims = list(in_dims) if in_dims is not None else [0] * len(args)
        outs, out_dims = vmap_flat(f, axis_size, dims, list(args))
        return [move_batch_axis(axis_size, d, 0, o) for o, d in zip(outs, out_dims)]
    return f_batched


def _axes_per_leaf(prefix, tree, what: str) -> list:
    """The axis for each leaf of ``tree``, where ``prefix`` gives one for whole subtrees."""
    try:
        return broadcast_prefix(prefix, tree)
    except ValueError as e:
        raise ValueError(f"vmap {what} specification must be a tree prefix of the "
                         f"corresponding value: {e}") from None


def _normalize_axis(axis, ndim: int, what: str):
    if axis is None:
        return None
    if not -ndim <= axis < ndim:
        raise ValueError(f"vmap {what} axis {axis} is out of bounds for an array of "
                         f"rank {ndim}")
    return axis % ndim


def move_batch_axis(axis_size: int, src, dst, x):
    """Put the batch axis of ``x`` (at ``src``, or absent) at position ``dst``."""
    if src is not_mapped:
        if dst is not_mapped:
            return x
        shape = list(get_aval(x).shape)
        shape.insert(dst, axis_size)
        return lax.broadcast_in_dim(x, tuple(shape),
                                    tuple(i for i in range(len(shape)) if i != dst))
    if dst is not_mapped:
        raise ValueError("vmap has mapped output but out_axes is None")
    if src == dst:
        return x
    perm = [i for i in range(get_aval(x).ndim) if i != src]
    perm.insert(dst, src)
    return lax.transpose(x, tuple(perm))


# ---------------------------------------------------------------------------
# Batching rules: (axis_size, values, batch dims, **params) -> (values, batch dims).


def _at_front(axis_size: int, x, dim):
    return move_batch_axis(axis_size, dim, 0, x)


def _elementwise_rule(primitive):
    """Elementwise primitives: line the batch axes up at the front, then apply.
    (Operands have equal per-example shapes: minijax.numpy broadcast them.)"""
    def rule(axis_size, vals, dims, **params):
        if len(vals) == 1:
            return primitive.bind(vals[0], **params), dims[0]
        vals = [_at_front(axis_size, v, d) for v, d in zip(vals, dims)]
        return primitive.bind(*vals, **params), 0
    vmap_rules[primitive] = rule


def _select_n_rule(axis_size, vals, dims):
    (which, *cases), (which_dim, *case_dims) = vals, dims
    cases = [_at_front(axis_size, c, d) for c, d in zip(cases, case_dims)]
    case_shape = get_aval(cases[0]).shape
    if which_dim is not_mapped and get_aval(which).ndim == 0:
        return lax.select_n(which, *cases), 0  # one predicate for everything
    which = _at_front(axis_size, which, which_dim)
    # A scalar predicate per example is spread over that example's elements.
    which = lax.broadcast_in_dim(which, case_shape, tuple(range(get_aval(which).ndim)))
    return lax.select_n(which, *cases), 0


def _reduce_rule(primitive):
    def rule(axis_size, vals, dims, *, axes):
        (x,), (d,) = vals, dims
        x = _at_front(axis_size, x, d)
        return primitive.bind(x, axes=tuple(a + 1 for a in axes)), 0
    vmap_rules[primitive] = rule


def _broadcast_in_dim_rule(axis_size, vals, dims, *, shape, broadcast_dimensions):
    x = _at_front(axis_size, vals[0], dims[0])
    return lax.broadcast_in_dim(x, (axis_size, *shape),
                                (0, *[d + 1 for d in broadcast_dimensions])), 0


def _reshape_rule(axis_size, vals, dims, *, new_sizes):
    x = _at_front(axis_size, vals[0], dims[0])
    return lax.reshape(x, (axis_size, *new_sizes)), 0


def _squeeze_rule(axis_size, vals, dims, *, dimensions):
    x = _at_front(axis_size, vals[0], dims[0])
    return lax.squeeze(x, tuple(d + 1 for d in dimensions)), 0


def _transpose_rule(axis_size, vals, dims, *, permutation):
    x = _at_front(axis_size, vals[0], dims[0])
    return lax.transpose(x, (0, *[p + 1 for p in permutation])), 0


def _slice_rule(axis_size, vals, dims, *, start_indices, limit_indices, strides):
    x = _at_front(axis_size, vals[0], dims[0])
    return lax.slice(x, (0, *start_indices), (axis_size, *limit_indices),
                     None if strides is None else (1, *strides)), 0


def _pad_rule(axis_size, vals, dims, *, padding_config):
    (x, padding_value), (d, pad_dim) = vals, dims
    if pad_dim is not not_mapped:
        raise NotImplementedError("batching pad with a per-example padding value")
    x = _at_front(axis_size, x, d)
    return lax.pad(x, padding_value, ((0, 0, 0), *padding_config)), 0


def _concatenate_rule(axis_size, vals, dims, *, dimension):
    vals = [_at_front(axis_size, v, d) for v, d in zip(vals, dims)]
    return lax.concatenate(vals, dimension + 1), 0


def _dot_general_rule(axis_size, vals, dims, *, dimension_numbers, preferred_element_type):
    (x, y), (x_dim, y_dim) = vals, dims
    (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
    shift = lambda axes: tuple(a + 1 for a in axes)  # noqa: E731
    if x_dim is not not_mapped and y_dim is not not_mapped:
        # Both batched: the vmapped axis becomes one more batch axis of dot_general.
        x, y = _at_front(axis_size, x, x_dim), _at_front(axis_size, y, y_dim)
        numbers = ((shift(x_contract), shift(y_contract)),
                   ((0, *shift(x_batch)), (0, *shift(y_batch))))
        return lax.dot_general(x, y, numbers, preferred_element_type), 0
    if x_dim is not not_mapped:
        # Only x: its vmapped axis is a free axis, the first of x's free axes.
        x = _at_front(axis_size, x, x_dim)
        numbers = ((shift(x_contract), y_contract), (shift(x_batch), y_batch))
        return lax.dot_general(x, y, numbers, preferred_element_type), len(x_batch)
    y = _at_front(axis_size, y, y_dim)
    x_free = get_aval(x).ndim - len(x_contract) - len(x_batch)
    numbers = ((x_contract, shift(y_contract)), (x_batch, shift(y_batch)))
    return lax.dot_general(x, y, numbers, preferred_element_type), len(x_batch) + x_free


def _jit_rule(axis_size, vals, dims, *, jaxpr: Jaxpr, name: str):
    new_jaxpr, consts = vmap_jaxpr(jaxpr, axis_size, tuple(dims))
    outs = jit_p.bind(*consts, *vals, jaxpr=new_jaxpr, name=f"vmap({name})")
    return outs, [0] * len(outs)


@cache_per_jaxpr
def vmap_jaxpr(jaxpr: Jaxpr, axis_size: int, dims_in: tuple) -> tuple[Jaxpr, list]:
    """The batched version of ``jaxpr``, with every output batched at axis 0."""
    def batched(*args):
        outs, dims_out = vmap_flat(jaxpr_as_fun(jaxpr), axis_size, list(dims_in), list(args))
        return [move_batch_axis(axis_size, d, 0, o) for o, d in zip(outs, dims_out)]

    in_avals = [aval if d is not_mapped else
                aval.update(shape=aval.shape[:d] + (axis_size,) + aval.shape[d:])
                for aval, d in zip(jaxpr.in_avals, dims_in)]
    new_jaxpr, consts = trace_to_jaxpr(batched, in_avals)
    return closure_convert(new_jaxpr), consts


for _p in (lax.neg_p, lax.sign_p, lax.floor_p, lax.ceil_p, lax.round_p, lax.sin_p,
           lax.cos_p, lax.tan_p, lax.tanh_p, lax.exp_p, lax.log_p, lax.log1p_p, lax.expm1_p,
           lax.sqrt_p, lax.abs_p, lax.add_p, lax.sub_p, lax.mul_p, lax.div_p, lax.max_p,
           lax.min_p, lax.pow_p, lax.lt_p, lax.le_p, lax.gt_p, lax.ge_p, lax.eq_p, lax.ne_p,
           lax.integer_pow_p, lax.convert_element_type_p):
    _elementwise_rule(_p)
_reduce_rule(lax.reduce_sum_p)
_reduce_rule(lax.reduce_max_p)
_reduce_rule(lax.reduce_min_p)
vmap_rules.update({
    lax.select_n_p: _select_n_rule,
    lax.broadcast_in_dim_p: _broadcast_in_dim_rule,
    lax.reshape_p: _reshape_rule,
    lax.squeeze_p: _squeeze_rule,
    lax.transpose_p: _transpose_rule,
    lax.slice_p: _slice_rule,
    lax.pad_p: _pad_rule,
    lax.dot_general_p: _dot_general_rule,
    lax.concatenate_p: _concatenate_rule,
    jit_p: _jit_rule,
})
