"""Reverse mode: transpose the linear jaxpr that ``linearize`` produced.

A linear function ``t -> J t`` written as a jaxpr can be run backwards: walk the
equations from last to first, and for each, turn the cotangent of its output
into cotangents of its linear inputs with the primitive's *transpose rule*.
That computes ``ct -> J^T ct``, the vector-Jacobian product, and ``grad`` is
that product with a cotangent of 1.  Nothing here differentiates anything:
every derivative came from a JVP rule; this module only transposes.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from minijax import dtypes, lax
from minijax.core import Array, ShapedArray, get_aval
from minijax.jaxpr import (
    Jaxpr, Literal, Var, cache_per_jaxpr, closure_convert, eval_jaxpr, trace_to_jaxpr)
from minijax.jit import jit_p
from minijax.partial_eval import linearize_flat
from minijax.tree_util import flatten_fun, tree_flatten, tree_map, tree_unflatten


class UndefPrimal:
    """A linear input of the jaxpr being transposed: only its type is known."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval


def zeros_of(aval: ShapedArray) -> Array:
    return Array(np.zeros(aval.shape, aval.dtype), aval.weak_type)


def backward_pass(jaxpr: Jaxpr, args: list, cotangents: list) -> list:
    """Cotangents of the undefined (linear) ``args`` of ``jaxpr``, given those of its
    outputs.  ``args`` holds the residuals' values and UndefPrimal markers."""
    primal_env: dict[Var, Any] = {}
    ct_env: dict[Var, Any] = {}

    def read_primal(x):
        if isinstance(x, Literal):
            return x.val
        return primal_env.get(x, UndefPrimal(x.aval))

    def read_cotangent(v: Var):
        ct = ct_env.pop(v, None)
        return zeros_of(v.aval) if ct is None else ct

    def write_cotangent(x, ct) -> None:
        if isinstance(x, Var) and ct is not None:
            ct_env[x] = lax.add(ct_env[x], ct) if x in ct_env else ct

    binders = jaxpr.constvars + jaxpr.invars
    primal_env.update((v, a) for v, a in zip(binders, args) if not isinstance(a, UndefPrimal))
    for v, ct in zip(jaxpr.outvars, cotangents):
        write_cotangent(v, ct)
    for eqn in reversed(jaxpr.eqns):
        primals_in = [read_primal(x) for x in eqn.inputs]
        cts_in = [read_cotangent(v) for v in eqn.out_binders]
        rule = transpose_rules.get(eqn.primitive)
        if rule is None:
            raise NotImplementedError(
                f"Transpose rule (for reverse-mode differentiation) for "
                f"'{eqn.primitive}' not implemented: the tangent computation applies "
                f"'{eqn.primitive}' to a tangent, which is not a linear operation")
        cts_out = rule(cts_in if eqn.primitive.multiple_results else cts_in[0],
                       *primals_in, **eqn.params)
        for x, ct in zip(eqn.inputs, cts_out):
            write_cotangent(x, ct)
    return [read_cotangent(v) for v, a in zip(binders, args) if isinstance(a, UndefPrimal)]


transpose_rules: dict = {}


# ---------------------------------------------------------------------------
# Transpose rules: (cotangent of output, *inputs, **params) -> cotangents of
# inputs, None for inputs that are not linear (known values).


def _is_linear(x) -> bool:
    return isinstance(x, UndefPrimal)


def _mul_transpose(ct, x, y):
    if _is_linear(x) and _is_linear(y):
        raise NotImplementedError(_NONLINEAR.format("mul"))
    return [lax.mul(ct, y), None] if _is_linear(x) else [None, lax.mul(x, ct)]


def _div_transpose(ct, x, y):
    if _is_linear(y):
        raise NotImplementedError(_NONLINEAR.format("div"))
    return [lax.div(ct, y), None]


_NONLINEAR = ("Transpose rule (for reverse-mode differentiation) for '{}' not implemented "
              "for this use: a tangent appears in it non-linearly (a JVP rule's tangent "
              "output must be linear in the input tangents)")


def _convert_element_type_transpose(ct, x, *, new_dtype, weak_type):
    return [lax.convert_element_type(ct, x.aval.dtype, x.aval.weak_type)]


def _reduce_sum_transpose(ct, x, *, axes):
    kept = tuple(i for i in range(x.aval.ndim) if i not in axes)
    return [lax.broadcast_in_dim(ct, x.aval.shape, kept)]


def _broadcast_in_dim_transpose(ct, x, *, shape, broadcast_dimensions):
    # Sum over the new axes, and over the axes that were stretched from size 1.
    new_axes = tuple(i for i in range(len(shape)) if i not in broadcast_dimensions)
    stretched = tuple(dst for src, dst in enumerate(broadcast_dimensions)
                      if x.aval.shape[src] == 1 and shape[dst] != 1)
    summed = lax.reduce_sum(ct, new_axes + stretched) if new_axes + stretched else ct
    return [lax.reshape(summed, x.aval.shape)]


def _reshape_transpose(ct, x, **_):
    return [lax.reshape(ct, x.aval.shape)]


def _transpose_transpose(ct, x, *, permutation):
    return [lax.transpose(ct, tuple(np.argsort(permutation)))]


def _select_n_transpose(ct, which, *cases):
    if _is_linear(which):
        raise NotImplementedError(_NONLINEAR.format("select_n"))
    zeros = lax.zeros_like(ct)
    return [None] + [lax.select_n(which, *[ct if j == i else zeros for j in range(len(cases))])
                     if _is_linear(case) else None
                     for i, case in enumerate(cases)]


def _slice_transpose(ct, x, *, start_indices, limit_indices, strides):
    steps = strides or (1,) * len(start_indices)
    config = []
    for lo, size, out, step in zip(start_indices, x.aval.shape, get_aval(ct).shape, steps):
        last = lo + (out - 1) * step + 1 if out else lo  # one past the last element taken
        config.append((lo, size - last, step - 1))
    return [lax.pad(ct, zeros_of(x.aval.update(shape=())), config)]


def _pad_transpose(ct, x, padding_value, *, padding_config):
    starts = [lo for lo, _, _ in padding_config]
    shape = get_aval(ct).shape
    limits = [size - hi for size, (_, hi, _) in zip(shape, padding_config)]
    strides = [interior + 1 for _, _, interior in padding_config]
    x_ct = lax.slice(ct, starts, limits, strides) if _is_linear(x) else None
    pad_ct = None
    if _is_linear(padding_value):
        inside = lax.reduce_sum(lax.slice(ct, starts, limits, strides), tuple(range(len(shape))))
        pad_ct = lax.sub(lax.reduce_sum(ct, tuple(range(len(shape)))), inside)
    return [x_ct, pad_ct]


def _concatenate_transpose(ct, *operands, dimension):
    """Each operand's cotangent is its slice of the output's."""
    shape = get_aval(ct).shape
    cts, start = [], 0
    for x in operands:
        size = x.aval.shape[dimension] if _is_linear(x) else get_aval(x).shape[dimension]
        if _is_linear(x):
            starts = [0] * len(shape)
            starts[dimension] = start
            limits = list(shape)
            limits[dimension] = start + size
            cts.append(lax.slice(ct, starts, limits))
        else:
            cts.append(None)
        start += size
    return cts


def _dot_general_transpose(ct, x, y, *, dimension_numbers, preferred_element_type):
    if _is_linear(x) and _is_linear(y):
        raise NotImplementedError(_NONLINEAR.format("dot_general"))
    if _is_linear(x):
        return [_dot_transpose_lhs(ct, x.aval, y, dimension_numbers), None]
    swapped = _swap_dimension_numbers(dimension_numbers)
    return [None, _dot_transpose_lhs(ct, y.aval, x, swapped, rhs_first=True)]


def _swap_dimension_numbers(dimension_numbers):
    (lc, rc), (lb, rb) = dimension_numbers
    return ((rc, lc), (rb, lb))


def _dot_transpose_lhs(ct, x_aval: ShapedArray, y, dimension_numbers, rhs_first=False):
    """Cotangent of the lhs ``x`` of ``dot_general(x, y)``: contract ``ct`` with ``y``
    over y's free axes, then put the axes back in x's order."""
    (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
    x_ndim, y_ndim = x_aval.ndim, get_aval(y).ndim
    x_free = [i for i in range(x_ndim) if i not in x_contract and i not in x_batch]
    y_free = [i for i in range(y_ndim) if i not in y_contract and i not in y_batch]
    nb = len(x_batch)
    # ct's axes: batch, then the lhs's free axes, then the rhs's free axes.
    ct_x_free = list(range(nb, nb + len(x_free)))
    ct_y_free = list(range(nb + len(x_free), nb + len(x_free) + len(y_free)))
    if rhs_first:  # ct's free axes came from (y, x) in this order
        ct_y_free = list(range(nb, nb + len(y_free)))
        ct_x_free = list(range(nb + len(y_free), nb + len(y_free) + len(x_free)))
    dims = ((ct_y_free, y_free), (list(range(nb)), list(y_batch)))
    # result axes: batch, ct's remaining (x's free) axes, y's remaining (x's contract pairs)
    out = lax.dot_general(ct, y, dims, preferred_element_type=x_aval.dtype)
    y_kept = [i for i in range(y_ndim) if i not in y_free and i not in y_batch]
    order = list(x_batch) + x_free + [x_contract[list(y_contract).index(i)] for i in y_kept]
    return lax.transpose(out, tuple(np.argsort(order)))


def _jit_transpose(cts, *args, jaxpr: Jaxpr, name: str):
    undefined = tuple(_is_linear(a) for a in args)
    transposed, consts = transpose_jaxpr(jaxpr, undefined)
    residuals = [a for a in args if not _is_linear(a)]
    outs = iter(jit_p.bind(*consts, *residuals, *cts, jaxpr=transposed,
                           name=f"transpose({name})"))
    return [next(outs) if u else None for u in undefined]


@cache_per_jaxpr
def transpose_jaxpr(jaxpr: Jaxpr, undefined: tuple[bool, ...]) -> tuple[Jaxpr, list]:
    """A jaxpr taking (residuals, output cotangents) to the linear inputs' cotangents."""
    res_avals = [a for a, u in zip(jaxpr.in_avals, undefined) if not u]

    def transposed(*res_and_cts):
        residuals = iter(res_and_cts[:len(res_avals)])
        args = [UndefPrimal(a) if u else next(residuals)
                for a, u in zip(jaxpr.in_avals, undefined)]
        return backward_pass(jaxpr, args, list(res_and_cts[len(res_avals):]))

    new_jaxpr, consts = trace_to_jaxpr(transposed, res_avals + jaxpr.out_avals)
    return closure_convert(new_jaxpr), consts


def _linear_transpose(transpose_fn):
    return lambda ct, *args, **params: [transpose_fn(ct, **params)]


transpose_rules.update({
    lax.neg_p: lambda ct, x: [lax.neg(ct)],
    lax.add_p: lambda ct, x, y: [ct, ct],
    lax.sub_p: lambda ct, x, y: [ct, lax.neg(ct)],
    lax.mul_p: _mul_transpose,
    lax.div_p: _div_transpose,
    lax.convert_element_type_p: _convert_element_type_transpose,
    lax.reduce_sum_p: _reduce_sum_transpose,
    lax.broadcast_in_dim_p: _broadcast_in_dim_transpose,
    lax.reshape_p: _reshape_transpose,
    lax.squeeze_p: _reshape_transpose,
    lax.transpose_p: _transpose_transpose,
    lax.select_n_p: _select_n_transpose,
    lax.slice_p: _slice_transpose,
    lax.pad_p: _pad_transpose,
    lax.dot_general_p: _dot_general_transpose,
    lax.concatenate_p: _concatenate_transpose,
    jit_p: _jit_transpose,
})


# ---------------------------------------------------------------------------
# The user-facing functions.


def linearize(fun: Callable, *primals) -> tuple[Any, Callable]:
    """``fun``'s output at ``primals`` and its JVP there as a linear function of tangents."""
    primals_flat, in_tree = tree_flatten(primals)
    flat_fun, out_tree = flatten_fun(fun, in_tree)
    primals_out, jaxpr, residuals = linearize_flat(
        flat_fun, primals_flat)

    def f_jvp(*tangents):
        tangents_flat, tree = tree_flatten(tangents)
        if tree != in_tree:
            raise TypeError(f"linearized function called on tangent values inconsistent "
                            f"with the original primal values: expected {in_tree}, got {tree}")
        return tree_unflatten(out_tree.get(), eval_jaxpr(jaxpr, residuals, *tangents_flat))

    return tree_unflatten(out_tree.get(), primals_out), f_jvp


def vjp(fun: Callable, *primals, has_aux: bool = False):
    """``fun``'s output at ``primals`` and a function from output cotangents to
    input cotangents; with ``has_aux``, ``fun`` returns ``(output, aux)`` and so
    does the call, followed by the aux data."""
    primals_flat, in_tree = tree_flatten(primals)
    flat_fun, out_tree = flatten_fun(_split_aux(fun) if has_aux else fun, in_tree)
    primals_out, jaxpr, residuals = linearize_flat(
        flat_fun, primals_flat)
    out = tree_unflatten(out_tree.get(), primals_out)
    out, aux = out if has_aux else (out, None)
    out_struct = tree_flatten(out)[1]
    num_out = out_struct.num_leaves

    def f_vjp(cotangent):
        cts_flat, tree = tree_flatten(cotangent)
        if tree != out_struct:
            raise ValueError(f"Tree structure of cotangent input {tree}, does not match "
                            f"structure of primal output {out_struct}.")
        for ct, p in zip(cts_flat, primals_out):
            _check_cotangent(get_aval(ct), get_aval(p))
        undefined = [UndefPrimal(get_aval(p)) for p in primals_flat]
        # Aux outputs are not differentiated: their cotangents are zero.
        aux_cts = [zeros_of(get_aval(p)) for p in primals_out[num_out:]]
        cts_in = backward_pass(jaxpr, [*residuals, *undefined], [*cts_flat, *aux_cts])
        return tree_unflatten(in_tree, cts_in)

    return (out, f_vjp, aux) if has_aux else (out, f_vjp)


def _split_aux(fun: Callable) -> Callable:
    def with_aux_as_output(*args):
        result = fun(*args)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise TypeError("a function called with has_aux=True must return a pair "
                            "(output, auxiliary data)")
        return tuple(result)
    return with_aux_as_output


def _check_cotangent(ct_aval: ShapedArray, primal_aval: ShapedArray) -> None:
    if ct_aval.shape != primal_aval.shape or ct_aval.dtype != primal_aval.dtype:
        raise ValueError(f"unexpected cotangent type {ct_aval.str_short()} for an output "
                         f"of type {primal_aval.str_short()}")


def value_and_grad(fun: Callable, argnums: int | tuple[int, ...] = 0,
                   has_aux: bool = False) -> Callable:
    """A function returning ``fun``'s value and its gradient with respect to the
    arguments ``argnums``."""

    @functools.wraps(fun)
    def value_and_grad_f(*args, **kwargs):
        positions = _check_argnums(argnums, args)
        for i in positions:
            tree_map(_check_input_dtype, args[i])

        def fun_of_diff_args(*diff_args):
            full = list(args)
            for i, a in zip(positions, diff_args):
                full[i] = a
            return fun(*full, **kwargs)  # keyword arguments are not differentiated

        diff_args = [args[i] for i in positions]
        if has_aux:
            ans, f_vjp, aux = vjp(fun_of_diff_args, *diff_args, has_aux=True)
        else:
            ans, f_vjp = vjp(fun_of_diff_args, *diff_args)
        _check_scalar(ans)
        grads = f_vjp(lax.full_like(ans, 1))
        grads = grads[0] if isinstance(argnums, int) else grads
        return ((ans, aux), grads) if has_aux else (ans, grads)

    return value_and_grad_f


def grad(fun: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar function with respect to the arguments ``argnums``."""
    value_and_grad_f = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def grad_f(*args, **kwargs):
        if has_aux:
            (_, aux), g = value_and_grad_f(*args, **kwargs)
            return g, aux
        return value_and_grad_f(*args, **kwargs)[1]

    return grad_f


def _check_argnums(argnums, args) -> tuple[int, ...]:
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in positions:
        if not -len(args) <= i < len(args):
            raise TypeError(
                f"differentiating with respect to argnums={argnums} requires at least "
                f"{max(positions) + 1} positional arguments to be passed by the caller, "
                f"but got only {len(args)} positional arguments.")
    return tuple(i % len(args) for i in positions)


def _check_input_dtype(x) -> None:
    dtype = get_aval(x).dtype
    if not dtypes.is_float(dtype):
        raise TypeError(
            f"grad requires real- or complex-valued inputs (input dtype that is a "
            f"sub-dtype of np.inexact), but got {dtype.name}. If you want to use "
            f"Boolean- or integer-valued inputs, use vjp.")


def _check_scalar(x) -> None:
    leaves, tree = tree_flatten(x)
    if len(leaves) != 1 or tree.node_type is not None:
        raise TypeError(f"Gradient only defined for scalar-output functions. Output was {x}.")
    aval = get_aval(x)
    if aval.shape != ():
        raise TypeError(f"Gradient only defined for scalar-output functions. "
                        f"Output had shape: {aval.shape}.")
    if not dtypes.is_float(aval.dtype):
        raise TypeError(f"grad requires real-valued outputs (output dtype that is a "
                        f"sub-dtype of np.floating), but got {aval.dtype.name}.")
