"""The transformations as users call them (JAX's ``api.py``).

Each one flattens its arguments' pytrees, runs the flat machinery of its
interpreter (``ad``, ``batching``, ``partial_eval``) and rebuilds the pytrees.
"""
from __future__ import annotations

import collections
import functools
import inspect
from typing import Any, Callable

import numpy as np

from minijax import dtypes
from minijax.lax import lax
from minijax.ad import (
    UndefinedPrimal, Zero, backward_pass, jvp_flat, linearize_flat, zeros_like_aval)
from minijax.batching import move_batch_axis, not_mapped, vmap_flat
from minijax.core import get_aval, to_array
from minijax.jaxpr import ClosedJaxpr, eval_jaxpr
from minijax.pjit import jit
from minijax.tree_util import (
    broadcast_prefix, flatten_fun, leaf_paths, register_pytree_node, tree_flatten, tree_leaves,
    tree_structure, tree_unflatten)


def jvp(fun: Callable, primals, tangents):
    """Evaluate ``fun`` at ``primals`` and its derivative along ``tangents``.

    ``primals`` and ``tangents`` are tuples (or lists) with one pytree per
    argument of ``fun``; returns ``(primals_out, tangents_out)``.
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("primal and tangent arguments to jax.jvp must be tuples or lists; "
                        f"found {type(primals).__name__} and {type(tangents).__name__}.")
    primals_flat, in_tree = tree_flatten(tuple(primals))
    tangents_flat, tangent_tree = tree_flatten(tuple(tangents))
    if in_tree != tangent_tree:
        raise TypeError(f"primal and tangent arguments to jax.jvp must have the same tree "
                        f"structure; primals have tree structure {in_tree} whereas "
                        f"tangents have tree structure {tangent_tree}.")
    for p, t in zip(primals_flat, tangents_flat):
        check_tangent(get_aval(p), get_aval(t))
    flat_fun, out_tree = flatten_fun(fun, in_tree)
    # The values go in as given, as in JAX: an input returned unchanged comes back
    # as the same object (a Python float stays a float).
    primals_out, tangents_out = jvp_flat(flat_fun, primals_flat, tangents_flat, False)
    return (tree_unflatten(out_tree.get(), primals_out),
            tree_unflatten(out_tree.get(), list(map(_instantiate, tangents_out))))


def check_tangent(primal_aval, tangent_aval) -> None:
    """A tangent must have its primal's shape, and its dtype (float0 for an integer
    or boolean primal)."""
    expected = primal_aval.to_tangent_aval().dtype
    if tangent_aval.dtype != expected:
        raise TypeError(f"primal and tangent arguments to jax.jvp do not match; dtypes must "
                        f"be equal, or in case of int/bool primal dtype the tangent dtype "
                        f"must be float0.Got primal dtype {primal_aval.dtype} and so expected "
                        f"tangent dtype {expected}, but got tangent dtype "
                        f"{tangent_aval.dtype} instead.")
    if primal_aval.shape != tangent_aval.shape:
        raise ValueError(f"jvp called with different primal and tangent shapes;Got primal "
                         f"shape {primal_aval.shape} and tangent shape as {tangent_aval.shape}")


def _instantiate(t):
    """A tangent or cotangent for the user: zeros (float0 for an integer) if symbolic."""
    return zeros_like_aval(t.aval.to_tangent_aval()) if type(t) is Zero else t


def make_jaxpr(fun: Callable, static_argnums: int | tuple[int, ...] = ()) -> Callable:
    """A function that returns the jaxpr ``fun`` stages for the given arguments.
    As in JAX, it is what ``jit`` stages, from the same cache."""
    @functools.wraps(fun)
    def make(*args, **kwargs) -> ClosedJaxpr:
        return jit(fun, static_argnums).trace(*args, **kwargs)

    return make


_INCONSISTENT_TANGENTS = ("linearized function called on tangent values inconsistent with "
                          "the original primal values:")


def linearize(fun: Callable, *primals) -> tuple[Any, Callable]:
    """``fun``'s output at ``primals`` and its JVP there as a linear function of tangents."""
    primals_flat, in_tree = tree_flatten(primals)
    flat_fun, out_tree = flatten_fun(fun, in_tree)
    primals_out, nonzeros, jaxpr, residuals = linearize_flat(flat_fun, primals_flat)

    def f_jvp(*tangents):
        tangents_flat, tree = tree_flatten(tangents)
        if tree != in_tree:
            raise TypeError(f"{_INCONSISTENT_TANGENTS} expected {in_tree}, got {tree}")
        for primal, tangent in zip(map(get_aval, primals_flat), map(get_aval, tangents_flat)):
            if (tangent.shape, tangent.dtype) != (primal.shape, primal.to_tangent_aval().dtype):
                raise ValueError(f"{_INCONSISTENT_TANGENTS}\nGot tangent aval {tangent} for "
                                 f"primal aval {primal} but expected "
                                 f"{primal.to_tangent_aval()}.")
        outs = iter(eval_jaxpr(jaxpr, residuals, *tangents_flat))
        tangents_out = [next(outs) if nz else _instantiate(Zero(get_aval(p)))
                        for p, nz in zip(primals_out, nonzeros)]
        return tree_unflatten(out_tree.get(), tangents_out)

    return tree_unflatten(out_tree.get(), primals_out), f_jvp


def vjp(fun: Callable, *primals, has_aux: bool = False):
    """``fun``'s output at ``primals`` and a function from output cotangents to
    input cotangents; with ``has_aux``, ``fun`` returns ``(output, aux)`` and so
    does the call, followed by the aux data.  The function is a ``VJP``, a pytree
    holding the residuals, so it can be passed in and out of transformed functions."""
    out, aux, primals_out, pullback, residuals = _vjp(fun, primals, has_aux)
    f_vjp = VJP(functools.partial(_checked_pullback, tree_structure(out),
                                  [get_aval(p) for p in primals_out], pullback), residuals)
    return (out, f_vjp, aux) if has_aux else (out, f_vjp)


class VJP:
    """The function ``vjp`` returns: a pullback applied to residuals.  The residuals
    are its pytree leaves, the pullback is part of its structure."""

    def __init__(self, pullback: Callable, residuals: list):
        self.pullback, self.residuals = pullback, residuals

    def __call__(self, cotangent):
        return self.pullback(self.residuals, cotangent)


register_pytree_node(VJP, lambda f: (f.residuals, f.pullback),
                     lambda pullback, residuals: VJP(pullback, list(residuals)))


def _checked_pullback(out_struct, out_avals: list, pullback: Callable, residuals: list,
                      cotangent):
    cts_flat, tree = tree_flatten(cotangent)
    if tree != out_struct:
        raise ValueError(f"Tree structure of cotangent input {tree}, does not match "
                         f"structure of primal output {out_struct}.")
    for ct, primal_aval in zip(cts_flat, out_avals):
        # As JAX checks it: a cotangent must have its output's shape, and a float dtype
        # if the output is a float, any dtype if not (its cotangent is zero anyway).
        ct_aval, expected = get_aval(ct), primal_aval.to_tangent_aval()
        if ct_aval.shape != expected.shape or (dtypes.is_float(expected.dtype) and not
                                               dtypes.is_float(ct_aval.dtype)):
            raise ValueError(f"unexpected JAX type (e.g. shape/dtype) for argument to VJP "
                             f"function: got {ct_aval.str_short(False)}, but expected "
                             f"{expected.str_short(False)} because the corresponding output "
                             f"of the differentiated function had JAX type "
                             f"{primal_aval.str_short(False)}")
    return pullback(residuals, cts_flat)


def _vjp(fun: Callable, primals: tuple, has_aux: bool):
    """What vjp and value_and_grad share: the output, the aux data, the flat
    outputs, the pullback from the residuals and the flat output cotangents to the
    inputs' cotangents, and the residuals."""
    primals_flat, in_tree = tree_flatten(primals)
    # NumPy inputs become minijax arrays, as JAX makes them its own: one passed through
    # unchanged comes back as an Array.
    primals_flat = [to_array(x) if isinstance(x, (np.ndarray, np.generic)) else x
                    for x in primals_flat]
    flat_fun, out_tree = flatten_fun(_split_aux(fun) if has_aux else fun, in_tree)
    primals_out, nonzeros, jaxpr, residuals = linearize_flat(flat_fun, primals_flat)
    out = tree_unflatten(out_tree.get(), primals_out)
    out, aux = out if has_aux else (out, None)
    out_avals = [get_aval(p) for p in primals_out]
    undefined = [UndefinedPrimal(get_aval(p)) for p in primals_flat]

    def pullback(residuals: list, cts_flat: list):
        # Aux outputs are not differentiated: their cotangents are zero.
        cts_out = cts_flat + [Zero(aval) for aval in out_avals[len(cts_flat):]]
        cts_in = backward_pass(jaxpr, residuals, undefined,
                               [ct for ct, nz in zip(cts_out, nonzeros) if nz])
        return tree_unflatten(in_tree, list(map(_instantiate, cts_in)))

    return out, aux, primals_out, pullback, residuals


def _split_aux(fun: Callable) -> Callable:
    def with_aux_as_output(*args):
        result = fun(*args)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise TypeError("a function called with has_aux=True must return a pair "
                            "(output, auxiliary data)")
        return tuple(result)
    return with_aux_as_output


def value_and_grad(fun: Callable, argnums: int | tuple[int, ...] = 0,
                   has_aux: bool = False, allow_int: bool = False) -> Callable:
    """A function returning ``fun``'s value and its gradient with respect to the
    arguments ``argnums``.  With ``allow_int``, those may be integers or booleans,
    whose gradient is zero, of dtype float0."""

    @functools.wraps(fun)
    def value_and_grad_f(*args, **kwargs):
        positions = _check_argnums(argnums, args)
        diff_args = tuple(args[i] for i in positions)
        for leaf in tree_leaves(diff_args):
            _check_input_dtype(leaf, allow_int)

        def fun_of_diff_args(*diff_args):
            full = dict(enumerate(args)) | dict(zip(positions, diff_args))
            return fun(*full.values(), **kwargs)  # keyword arguments are not differentiated

        ans, aux, _, pullback, residuals = _vjp(fun_of_diff_args, diff_args, has_aux)
        _check_scalar(ans)
        grads = pullback(residuals, [lax.full_like(ans, 1)])
        grads = grads[0] if isinstance(argnums, int) else grads
        return ((ans, aux), grads) if has_aux else (ans, grads)

    return value_and_grad_f


def grad(fun: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False,
         allow_int: bool = False) -> Callable:
    """The gradient of a scalar function with respect to the arguments ``argnums``
    (see ``value_and_grad`` for ``allow_int``)."""
    value_and_grad_f = value_and_grad(fun, argnums, has_aux, allow_int)

    @functools.wraps(fun)
    def grad_f(*args, **kwargs):
        value, g = value_and_grad_f(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return grad_f


def _check_argnums(argnums, args) -> tuple[int, ...]:
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if any(not -len(args) <= i < len(args) for i in positions):
        raise TypeError(f"differentiating with respect to argnums={argnums} requires at least "
                        f"{max(positions) + 1} positional arguments to be passed by the caller, "
                        f"but got only {len(args)} positional arguments.")
    return tuple(i % len(args) for i in positions)


def _check_input_dtype(x, allow_int: bool) -> None:
    dtype = get_aval(x).dtype
    if not dtypes.is_float(dtype) and not allow_int:
        raise TypeError(
            f"grad requires real- or complex-valued inputs (input dtype that is a "
            f"sub-dtype of np.inexact), but got {dtype.name}. If you want to use "
            f"Boolean- or integer-valued inputs, use vjp or set allow_int to True.")


def _check_scalar(x) -> None:
    if tree_structure(x).node_type is not None:  # not a single leaf
        raise TypeError(f"Gradient only defined for scalar-output functions. Output was {x}.")
    aval = get_aval(x)
    if aval.shape != ():
        raise TypeError(f"Gradient only defined for scalar-output functions. "
                        f"Output had shape: {aval.shape}.")
    if not dtypes.is_float(aval.dtype):
        raise TypeError(f"grad requires real-valued outputs (output dtype that is a "
                        f"sub-dtype of np.floating), but got {aval.dtype.name}. For "
                        f"differentiation of functions with integer outputs, use jax.vjp "
                        f"directly.")


def _axis_size(fun: Callable, args: tuple, args_flat: list, in_axes: list,
               axis_size: int | None) -> int:
    """The size of the mapped axes, which must all agree (with axis_size, if given)."""
    sizes = [get_aval(x).shape[ax] if ax is not not_mapped else None
             for x, ax in zip(args_flat, in_axes)]
    distinct = {s for s in sizes if s is not None} | ({axis_size} - {None})
    if len(distinct) == 1:
        return distinct.pop()
    if not args_flat:
        raise ValueError(f"vmap wrapped function must be passed at least one argument "
                         f"containing an array or axis_size must be specified, got empty "
                         f"*args={args} and **kwargs={{}}")
    if not distinct:
        raise ValueError("vmap must have at least one non-None value in in_axes or "
                         "axis_size must be specified")
    raise ValueError(_inconsistent_sizes(fun, args, args_flat, in_axes, sizes, axis_size))


def _inconsistent_sizes(fun, args, args_flat, in_axes, sizes, axis_size) -> str:
    """JAX's message: each size found, most common first, with an argument that has it."""
    names = _leaf_names(fun, args)
    lines = [] if axis_size is None else [f"  * the `axis_size` argument was {axis_size}"]
    counts = collections.Counter(s for s in sizes if s is not None).most_common()
    for rank, (size, count) in enumerate(counts):
        i = sizes.index(size)
        example = (f"axis {in_axes[i]} of {names[i]} of type "
                   f"{get_aval(args_flat[i]).str_short(short_dtypes=False)}")
        lines.append(f"  * one axis had size {size}: {example}" if count == 1 else
                     f"  * {'most' if rank == 0 else 'some'} axes ({count} of them) "
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


_IN_AXES_MUST = ("vmap in_axes must be an int, None, or a tuple of entries corresponding to "
                 "the positional arguments passed to the function, but got ")


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
    if not (in_axes is None or type(in_axes) in (int, tuple)):
        raise TypeError(f"{_IN_AXES_MUST}{in_axes}.")
    for what, axes in (("in_axes", in_axes), ("out_axes", out_axes)):
        if not all(type(axis) is int for axis in tree_leaves(axes)):
            raise TypeError(f"vmap {what} must be an int, None, or (nested) container "
                            f"with those types as leaves, but got {axes}.")

    @functools.wraps(fun)
    def batched_fun(*args):
        if isinstance(in_axes, tuple) and len(in_axes) != len(args):
            raise ValueError(
                f"{_IN_AXES_MUST}len(in_axes)={len(in_axes)}, len(args)={len(args)}")
        args_flat, in_tree = tree_flatten(args)
        axes_flat = _axes_per_leaf(in_axes, args, "in_axes")
        normalized = [_in_axis(ax, x) for x, ax in zip(args_flat, axes_flat)]
        size = _axis_size(fun, args, args_flat, axes_flat, axis_size)  # axes as given
        flat_fun, out_tree = flatten_fun(fun, in_tree)
        outs, dims_out = vmap_flat(flat_fun, size, normalized, args_flat)
        outs_tree = tree_unflatten(out_tree.get(), outs)
        out_axes_flat = _axes_per_leaf(out_axes, outs_tree, "out_axes")
        outs = [_to_out_axis(size, src, dst, o, path) for o, src, dst, path
                in zip(outs, dims_out, out_axes_flat, leaf_paths(outs_tree))]
        return tree_unflatten(out_tree.get(), outs)

    return batched_fun


def _axes_per_leaf(prefix, tree, what: str) -> list:
    """The axis for each leaf of ``tree``, where ``prefix`` gives one for whole subtrees."""
    try:
        return broadcast_prefix(prefix, tree)
    except ValueError as e:
        raise ValueError(f"vmap {what} specification must be a tree prefix of the "
                         f"corresponding value: {e}") from None


def _in_axis(axis, x):
    """``axis`` of the argument ``x``, counted from the front."""
    shape = get_aval(x).shape
    if axis is not None and not -len(shape) <= axis < len(shape):
        raise ValueError(f"vmap was requested to map its argument along axis {axis}, which "
                         f"implies that its rank should be at least "
                         f"{axis + 1 if axis >= 0 else -axis}, but is only {len(shape)} "
                         f"(its shape is {shape})")
    return axis if axis is None else axis % len(shape)


def _to_out_axis(size: int, src, dst, x, path: str):
    """The output ``x``, batched at ``src``, with its batch axis moved to ``dst``."""
    if dst is None:
        if src is not not_mapped:
            raise ValueError(f"at vmap out_axes{path}, got axis spec None but output was "
                             f"batched on axis {src}")
        return x
    ndim = get_aval(x).ndim + (src is not_mapped)
    if not -ndim <= dst < ndim:
        raise ValueError(f"axis {dst} is out of bounds for array of dimension {ndim}")
    return move_batch_axis(size, src, dst % ndim, x)


