"""Every function of minijax.numpy, and the operators, against JAX.

Each case is a function of a few arrays with example inputs. It runs as it is and
under each transformation (jit, jvp, grad of its sum, vmap), once on minijax and
once on JAX, and parity.assert_same compares the results: shapes, dtypes, weak
types and values at float32 tolerance.

Inputs stay away from points where a function is not differentiable, except in the
cases named ``*_at_*``, which check JAX's convention at such a point (the
derivative of abs at 0, of maximum at a tie, ...).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import pytest

import parity


def f32(*values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def i32(*values) -> np.ndarray:
    return np.array(values, dtype=np.int32)


# Example inputs.
V = f32(0.3, -1.2, 2.5)                  # a vector, no zeros
W = f32(1.1, 0.4, -0.7)                  # another, never equal to V
POS = f32(0.25, 1.5, 3.0)                # positive (log, sqrt, pow)
SMALL = f32(0.2, -0.9, 1.1)              # inside (-pi/2, pi/2) for tan
M = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)   # 2 x 3
N = np.array([[1.0, 0.5], [-0.5, 2.0], [0.3, -1.2]], np.float32)    # 3 x 2
B = np.arange(12, dtype=np.float32).reshape(2, 2, 3) / 5 - 1        # 2 x 2 x 3
C = np.arange(12, dtype=np.float32).reshape(2, 3, 2) / 4 - 1        # 2 x 3 x 2
COL = f32(0.5, -1.5, 2.0).reshape(3, 1)
ROW = f32(1.0, -2.0, 0.5, 3.0).reshape(1, 4)
SCALAR = np.float32(0.7)
INTS = i32(3, -1, 4)
BOOLS = np.array([True, False, True])


class Case(NamedTuple):
    name: str
    fn: Callable  # fn(jnp, *args)
    args: tuple
    differentiable: bool = True  # float inputs and a float output


def case(name, fn, *args, differentiable=True):
    differentiable &= all(np.asarray(a).dtype.kind == "f" for a in args)
    return Case(name, fn, args, differentiable)


CASES = [
    # Elementwise functions.
    case("sin", lambda jnp, x: jnp.sin(x), V),
    case("cos", lambda jnp, x: jnp.cos(x), V),
    case("tan", lambda jnp, x: jnp.tan(x), SMALL),
    case("tanh", lambda jnp, x: jnp.tanh(x), V),
    case("exp", lambda jnp, x: jnp.exp(x), V),
    case("log", lambda jnp, x: jnp.log(x), POS),
    case("log1p", lambda jnp, x: jnp.log1p(x), f32(-0.5, 0.3, 4.0)),
    case("expm1", lambda jnp, x: jnp.expm1(x), V),
    case("sqrt", lambda jnp, x: jnp.sqrt(x), POS),
    case("abs", lambda jnp, x: jnp.abs(x), V),
    case("abs_operator", lambda jnp, x: abs(x), V),
    case("sign", lambda jnp, x: jnp.sign(x), V),
    case("floor", lambda jnp, x: jnp.floor(x), f32(0.5, -1.5, 2.7, -0.2)),
    case("ceil", lambda jnp, x: jnp.ceil(x), f32(0.5, -1.5, 2.7, -0.2)),
    case("round_halves_to_even", lambda jnp, x: jnp.round(x), f32(0.5, 1.5, -2.5, 2.7)),
    case("round_of_ints", lambda jnp, x: jnp.round(x), INTS, differentiable=False),
    case("negative", lambda jnp, x: -x, V),
    case("sin_of_scalar", lambda jnp, x: jnp.sin(x), SCALAR),
    case("exp_of_matrix", lambda jnp, x: jnp.exp(x), M),
    case("sin_of_ints", lambda jnp, x: jnp.sin(x), INTS),
    case("abs_of_ints", lambda jnp, x: jnp.abs(x), INTS),
    case("sign_of_ints", lambda jnp, x: jnp.sign(x), INTS),
    case("sqrt_of_python_float", lambda jnp, x: x * jnp.sqrt(2.0), V),
    # JAX's conventions where a function has no derivative.
    case("abs_at_zero", lambda jnp, x: jnp.abs(x), f32(0.0, -0.0, 1.0)),
    case("sqrt_at_zero", lambda jnp, x: jnp.sqrt(x), f32(0.0, 4.0)),
    case("sign_at_zero", lambda jnp, x: jnp.sign(x), f32(0.0, -2.0)),
    case("maximum_at_ties", lambda jnp, x, y: jnp.maximum(x, y), f32(1.0, 2.0, -1.0), f32(1.0, 0.0, -1.0)),
    case("minimum_at_ties", lambda jnp, x, y: jnp.minimum(x, y), f32(1.0, 2.0, -1.0), f32(1.0, 0.0, -1.0)),
    case("max_with_ties", lambda jnp, x: jnp.max(x), f32(2.0, -1.0, 2.0, 2.0)),
    case("max_axis_with_ties", lambda jnp, x: jnp.max(x, axis=1),
         np.array([[1.0, 1.0, 0.0], [3.0, -1.0, 3.0]], np.float32)),
    case("clip_at_bounds", lambda jnp, x: jnp.clip(x, -1.0, 1.0), f32(-1.0, 0.5, 1.0)),
    case("maximum_with_zero_at_zero", lambda jnp, x: jnp.maximum(x, 0.0), f32(0.0, -1.0, 2.0)),
    # Binary functions and clip, where.
    case("maximum", lambda jnp, x, y: jnp.maximum(x, y), V, W),
    case("minimum", lambda jnp, x, y: jnp.minimum(x, y), V, W),
    case("maximum_with_python_scalar", lambda jnp, x: jnp.maximum(x, 0.5), V),
    case("minimum_with_python_int", lambda jnp, x: jnp.minimum(x, 1), V),
    case("clip", lambda jnp, x: jnp.clip(x, -1.0, 1.0), V),
    case("clip_min_only", lambda jnp, x: jnp.clip(x, 0.0), V),
    case("clip_max_only", lambda jnp, x: jnp.clip(x, max=0.0), V),
    case("clip_ints", lambda jnp, x: jnp.clip(x, 0, 3), INTS),
    case("where", lambda jnp, x, y: jnp.where(x > y, x, y), V, W),
    case("where_with_scalar", lambda jnp, x: jnp.where(x > 0, x, 0.0), V),
    case("where_python_bools", lambda jnp, x: jnp.where(jnp.array([True, False, True]), x, -x), V),
    case("where_broadcast", lambda jnp, x, y: jnp.where(x > 0.0, x, y), COL, ROW),
    case("where_integer_condition", lambda jnp, c: jnp.where(c, 1.0, -1.0), INTS),
    # Reductions.
    case("sum", lambda jnp, x: jnp.sum(x), V),
    case("sum_axis0", lambda jnp, x: jnp.sum(x, axis=0), M),
    case("sum_axis1", lambda jnp, x: jnp.sum(x, axis=1), M),
    case("sum_axis_negative", lambda jnp, x: jnp.sum(x, axis=-1), B),
    case("sum_axes_tuple", lambda jnp, x: jnp.sum(x, axis=(0, 2)), B),
    case("sum_method", lambda jnp, x: x.sum(), M),
    case("sum_ints", lambda jnp, x: jnp.sum(x), INTS),
    case("sum_bools", lambda jnp, x: jnp.sum(x), BOOLS),
    case("mean", lambda jnp, x: jnp.mean(x), V),
    case("mean_axis0", lambda jnp, x: jnp.mean(x, axis=0), M),
    case("mean_axes_tuple", lambda jnp, x: jnp.mean(x, axis=(1, 2)), B),
    case("mean_method", lambda jnp, x: x.mean(axis=1), M),
    case("mean_ints", lambda jnp, x: jnp.mean(x), INTS),
    case("max", lambda jnp, x: jnp.max(x), V),
    case("max_axis0", lambda jnp, x: jnp.max(x, axis=0), M),
    case("max_axis_negative", lambda jnp, x: jnp.max(x, axis=-2), B),
    case("max_method", lambda jnp, x: x.max(), M),
    case("max_ints", lambda jnp, x: jnp.max(x, axis=0), INTS),
    case("sum_of_weak", lambda jnp, x: jnp.sum(x * 2.0), INTS),
    case("sum_of_weak_axis", lambda jnp, x: jnp.sum(jnp.array(1.0) + x, axis=0), M),
    case("max_of_weak", lambda jnp, x: jnp.max(x * 2.0), INTS),
    case("mean_of_weak", lambda jnp, x: jnp.mean(x * 2.0), INTS),
    case("sum_of_weak_ints", lambda jnp, x: jnp.sum(x * 0 + jnp.asarray(2)), BOOLS),
    # Products.
    case("dot_vectors", lambda jnp, x, y: jnp.dot(x, y), V, W),
    case("dot_matrix_vector", lambda jnp, x, y: jnp.dot(x, y), M, V),
    case("dot_vector_matrix", lambda jnp, x, y: jnp.dot(x, y), V, N),
    case("dot_matrices", lambda jnp, x, y: jnp.dot(x, y), M, N),
    case("dot_scalar", lambda jnp, x, y: jnp.dot(x, y), SCALAR, V),
    case("dot_ints", lambda jnp, x, y: jnp.dot(x, y), INTS, INTS),
    case("matmul", lambda jnp, x, y: jnp.matmul(x, y), M, N),
    case("matmul_operator", lambda jnp, x, y: x @ y, N, M),
    case("matmul_matrix_vector", lambda jnp, x, y: x @ y, M, V),
    case("matmul_batched", lambda jnp, x, y: jnp.matmul(x, y), B, C),
    case("matmul_mixed_dtypes", lambda jnp, x, y: x @ y, INTS, N),
    # Shapes.
    case("transpose", lambda jnp, x: jnp.transpose(x), M),
    case("transpose_axes", lambda jnp, x: jnp.transpose(x, (1, 0, 2)), B),
    case("transpose_3d", lambda jnp, x: jnp.transpose(x), B),
    case("T", lambda jnp, x: x.T, M),
    case("reshape", lambda jnp, x: jnp.reshape(x, (3, 2)), M),
    case("reshape_minus_one", lambda jnp, x: jnp.reshape(x, (-1, 4)), B),
    case("reshape_flat", lambda jnp, x: jnp.reshape(x, -1), M),
    case("reshape_method", lambda jnp, x: x.reshape(6, 2), B),
    case("ravel_method", lambda jnp, x: x.ravel(), B),
    case("flatten_method", lambda jnp, x: x.flatten(), M),
    case("transpose_method", lambda jnp, x: x.transpose(), B),
    case("transpose_method_axes", lambda jnp, x: x.transpose(1, 0, 2), B),
    case("transpose_method_tuple", lambda jnp, x: x.transpose((2, 0, 1)), B),
    case("dot_method", lambda jnp, x, y: x.dot(y), M, C[0]),
    case("clip_method", lambda jnp, x: x.clip(-0.5, 0.5), M),
    case("clip_method_max_only", lambda jnp, x: x.clip(max=0.25), M),
    case("any_method", lambda jnp, x: (x > 0.5).any(axis=0), M, differentiable=False),
    case("all_method", lambda jnp, x: (x > -2.0).all(), M, differentiable=False),
    case("reshape_method_tuple", lambda jnp, x: x.reshape((1, 6)), M),
    case("broadcast_to", lambda jnp, x: jnp.broadcast_to(x, (2, 3)), V),
    case("broadcast_to_3d", lambda jnp, x: jnp.broadcast_to(x, (2, 3, 4)), COL),
    case("broadcast_to_scalar", lambda jnp, x: jnp.broadcast_to(x, (4,)), SCALAR),
    # Creating arrays, combined with an input so that transformations see them.
    case("arange", lambda jnp, x: x * jnp.arange(3), V),
    case("arange_start_stop_step", lambda jnp, x: x + jnp.arange(1, 7, 2), V),
    case("arange_floats", lambda jnp, x: x * jnp.arange(0.0, 0.75, 0.25), V),
    case("arange_dtype", lambda jnp, x: x - jnp.arange(3, dtype=jnp.float32), V),
    case("linspace", lambda jnp, x: x * jnp.linspace(0.0, 1.0, 3), V),
    case("linspace_no_endpoint", lambda jnp, x: x * jnp.linspace(-1.0, 1.0, 3, endpoint=False), V),
    case("array_of_floats", lambda jnp, x: x + jnp.array([1.0, 2.0, 3.0]), V),
    case("array_of_ints", lambda jnp, x: x * jnp.array([1, 2, 3]), V),
    case("array_scalar_is_weak", lambda jnp, x: x * jnp.array(3.0), INTS),
    case("array_vector_is_strong", lambda jnp, x: x * jnp.array([3.0]), INTS),
    case("array_nested", lambda jnp, x: jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]) * x, V),
    case("array_dtype", lambda jnp, x: x * jnp.array([1, 2, 3], dtype=jnp.float32), V),
    case("asarray", lambda jnp, x: jnp.asarray(x) * 2.0, V),
    case("array_of_traced_values", lambda jnp, x: jnp.array([x[0], x[1] * 2.0]), V),
    case("asarray_numpy_float64", lambda jnp, x: x + jnp.asarray(np.array([1.0, 2.0, 3.0])), V),
    case("asarray_dtype", lambda jnp, x: jnp.asarray(x, jnp.float32), INTS),
    case("astype", lambda jnp, x: x.astype(jnp.float32) * 0.5, INTS),
    case("zeros", lambda jnp, x: x + jnp.zeros(3), V),
    case("zeros_2d", lambda jnp, x: x + jnp.zeros((2, 3)), V),
    case("zeros_int", lambda jnp, x: x + jnp.zeros(3, dtype=jnp.int32), V),
    case("ones", lambda jnp, x: x * jnp.ones((2, 3)), V),
    case("ones_int", lambda jnp, x: x + jnp.ones(3, jnp.int32), INTS),
    case("zeros_like", lambda jnp, x: x + jnp.zeros_like(x), M),
    case("ones_like", lambda jnp, x: x * jnp.ones_like(x), M),
    case("ones_like_ints", lambda jnp, x: x + jnp.ones_like(x), INTS),
    case("float32", lambda jnp, x: x * jnp.float32(2), V),
    case("pi", lambda jnp, x: jnp.sin(jnp.pi * x), V),
    # Operators.
    case("add", lambda jnp, x, y: x + y, V, W),
    case("subtract", lambda jnp, x, y: x - y, V, W),
    case("multiply", lambda jnp, x, y: x * y, V, W),
    case("divide", lambda jnp, x, y: x / y, V, W),
    case("power_int", lambda jnp, x: x ** 2, V),
    case("power_int_3", lambda jnp, x: x ** 3, V),
    case("power_int_0", lambda jnp, x: x ** 0, V),
    case("power_int_1", lambda jnp, x: x ** 1, V),
    case("power_negative_int", lambda jnp, x: x ** -2, V),
    case("power_float", lambda jnp, x: x ** 2.5, POS),
    case("power_float_exponent_one", lambda jnp, x: x ** 1.0, POS),
    case("power_arrays", lambda jnp, x, y: x ** y, POS, V),
    case("rpow", lambda jnp, x: 2.0 ** x, V),
    case("radd", lambda jnp, x: 1.5 + x, V),
    case("rsub", lambda jnp, x: 2 - x, V),
    case("rmul", lambda jnp, x: 3 * x, V),
    case("rdiv", lambda jnp, x: 1.0 / x, V),
    case("chain", lambda jnp, x, y: (x * y - y / 2.0) ** 2 + -x, V, W),
    case("int_plus_int", lambda jnp, x: x + 2, INTS),
    case("int_times_int", lambda jnp, x, y: x * y, INTS, INTS),
    case("int_minus", lambda jnp, x: -x, INTS),
    case("int_divide", lambda jnp, x: x / 2, INTS),
    case("int_power", lambda jnp, x: x ** 2, INTS),
    case("int_mixed_with_float", lambda jnp, x, y: x + y, INTS, V),
    case("bools_plus_int", lambda jnp, x: x + 1, BOOLS),
    # Comparisons.
    case("less", lambda jnp, x, y: x < y, V, W, differentiable=False),
    case("less_equal", lambda jnp, x, y: x <= y, V, f32(0.3, 0.0, 2.5), differentiable=False),
    case("greater", lambda jnp, x: x > 0.5, V, differentiable=False),
    case("greater_equal", lambda jnp, x: x >= 0.3, V, differentiable=False),
    case("equal", lambda jnp, x, y: x == y, V, f32(0.3, 0.0, 2.5), differentiable=False),
    case("not_equal", lambda jnp, x: x != 2.5, V, differentiable=False),
    case("compare_ints", lambda jnp, x, y: x > y, INTS, i32(0, 0, 4)),
    case("compare_int_with_float", lambda jnp, x: x < 2.5, INTS),
    # Indexing.
    case("index_int", lambda jnp, x: x[1], V),
    case("index_negative", lambda jnp, x: x[-1], V),
    case("slice", lambda jnp, x: x[1:], V),
    case("slice_negative", lambda jnp, x: x[:-1], V),
    case("slice_step", lambda jnp, x: x[::2], f32(1, 2, 3, 4, 5)),
    case("slice_start_step", lambda jnp, x: x[1::2], f32(1, 2, 3, 4, 5)),
    case("slice_negative_bounds", lambda jnp, x: x[-4:-1], f32(1, 2, 3, 4, 5)),
    case("slice_step_3", lambda jnp, x: x[1:6:3], f32(1, 2, 3, 4, 5, 6, 7)),
    case("slice_past_end", lambda jnp, x: x[1:10], V),
    case("slice_empty", lambda jnp, x: x[5:], V),
    case("index_row", lambda jnp, x: x[1], M),
    case("index_element", lambda jnp, x: x[1, 2], M),
    case("index_column", lambda jnp, x: x[:, -1], M),
    case("index_both_slices", lambda jnp, x: x[::2, 1:], M),
    case("index_ellipsis", lambda jnp, x: x[..., 0], B),
    case("index_ellipsis_middle", lambda jnp, x: x[1, ..., ::2], B),
    case("index_3d", lambda jnp, x: x[-1, 0:1, 1], B),
    case("index_ints", lambda jnp, x: x[::2], INTS),
    case("index_newaxis", lambda jnp, x: x[None], V),
    case("index_newaxis_middle", lambda jnp, x: x[:, None, 1:], M),
    case("difference_of_slices", lambda jnp, x: x[1:] - x[:-1], f32(1, 4, 9, 16)),
    case("iterate", lambda jnp, x: [x_i * 2.0 for x_i in x], V),
    # Broadcasting.
    case("broadcast_col_row", lambda jnp, x, y: x * y, COL, ROW),
    case("broadcast_matrix_vector", lambda jnp, x, y: x - y, M, V),
    case("broadcast_scalar_matrix", lambda jnp, x, y: x / (y + 3.0), SCALAR, M),
    case("broadcast_3d", lambda jnp, x, y: x + y, B, V),
    case("broadcast_maximum", lambda jnp, x, y: jnp.maximum(x, y), COL, ROW),
    # Weak types and promotion.
    case("int_array_times_python_float", lambda jnp, x: x * 2.0, INTS),
    case("float32_plus_python_int", lambda jnp, x: jnp.float32(1) + 1 + x, V),
    case("float32_scalar_plus_int", lambda jnp, x: jnp.float32(1) + x, INTS),
    case("python_float_scalar_plus_int_array", lambda jnp, x: jnp.array(3.0) + x, INTS),
    case("python_scalars_only", lambda jnp, x: x + jnp.multiply(2.0, 3) * jnp.add(1, 2), V),
    case("weak_int_times_array", lambda jnp, x: jnp.asarray(3) * x, V),
    case("bools_times_python_float", lambda jnp, x: x * 2.0, BOOLS),
    case("weak_float_scalar_arrays", lambda jnp, x: x * (jnp.array(2.0) * jnp.array(0.5)), V),
    case("zeros_like_python_float", lambda jnp, x: x * jnp.zeros_like(2.0), V),
]

IDS = [c.name for c in CASES]
assert len(set(IDS)) == len(IDS)
DIFFERENTIABLE = [c for c in CASES if c.differentiable]


# ---------------------------------------------------------------------------
# The transformations, written once for both libraries.


def tangents_for(args):
    """A tangent per argument: a varied pattern, so every input direction counts."""
    out = []
    for k, a in enumerate(args):
        a = np.asarray(a)
        pattern = (np.arange(a.size, dtype=np.float32) % 3 - 0.5 * (k + 1)).reshape(a.shape)
        out.append(pattern.astype(a.dtype) + np.float32(1.0))
    return tuple(out)


def batch_of(a, size=3):
    """A batch of ``size`` examples built from one, staying in the example's domain."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        # Scaling keeps signs, zeros and ties (x == y stays x == y across arguments).
        return np.stack([a * np.float32(s) for s in (1.0, 0.5, 1.25)[:size]])
    if a.dtype.kind == "i":
        return np.stack([a + k for k in range(size)])
    return np.stack([a if k % 2 == 0 else ~a for k in range(size)])


def run_eval(jax, jnp, c: Case):
    # As arrays: on NumPy arrays, `x + y` would be NumPy's own addition.
    return c.fn(jnp, *map(jnp.asarray, c.args))


def run_jit(jax, jnp, c: Case):
    return jax.jit(lambda *a: c.fn(jnp, *a))(*c.args)


def run_jvp(jax, jnp, c: Case):
    return jax.jvp(lambda *a: c.fn(jnp, *a), c.args, tangents_for(c.args))


def run_grad(jax, jnp, c: Case):
    argnums = tuple(range(len(c.args)))

    def total(*a):
        return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(c.fn(jnp, *a)))

    return jax.grad(total, argnums)(*c.args)


def run_vmap(jax, jnp, c: Case):
    return jax.vmap(lambda *a: c.fn(jnp, *a))(*map(batch_of, c.args))


def run_vmap_first_only(jax, jnp, c: Case):
    """Only the first argument is batched, and along its last axis."""
    in_axes = (-1,) + (None,) * (len(c.args) - 1)
    first = np.moveaxis(batch_of(c.args[0]), 0, -1)
    return jax.vmap(lambda *a: c.fn(jnp, *a), in_axes)(first, *c.args[1:])


TRANSFORMS = {"eval": run_eval, "jit": run_jit, "vmap": run_vmap,
              "vmap_first_only": run_vmap_first_only}
DIFF_TRANSFORMS = {"jvp": run_jvp, "grad": run_grad}

def params(cases, transforms):
    return [pytest.param(c, t, id=f"{c.name}-{t}") for c in cases for t in transforms]


@pytest.mark.parametrize("c, transform", params(CASES, TRANSFORMS))
def test_function(c: Case, transform: str):
    parity.assert_same(lambda jax, jnp: TRANSFORMS[transform](jax, jnp, c))


@pytest.mark.parametrize("c, transform", params(DIFFERENTIABLE, DIFF_TRANSFORMS))
def test_derivative(c: Case, transform: str):
    parity.assert_same(lambda jax, jnp: DIFF_TRANSFORMS[transform](jax, jnp, c))


# ---------------------------------------------------------------------------
# Things the table does not reach.


def test_grad_of_softplus_at_100_is_nan_as_in_jax():
    result = parity.assert_same(
        lambda jax, jnp: jax.grad(lambda x: jnp.log(1.0 + jnp.exp(x)))(100.0))
    assert np.isnan(np.asarray(result))


@pytest.mark.parametrize("x", [0.5, 2.0, 3.0, -1.5])
def test_grad_of_python_scalars(x):
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x: jnp.sin(x) * x ** 2)(x))
    parity.assert_same(lambda jax, jnp: jax.value_and_grad(lambda x: jnp.exp(-x) * 3)(x))


def test_jvp_of_python_scalars_keeps_weak_types():
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: x * 2.0 + 1, (3.0,), (1.0,)))
    parity.assert_same(lambda jax, jnp: jax.jvp(jnp.sin, (jnp.float32(3.0),), (jnp.float32(1.0),)))


def test_stacking_traced_values_keeps_weak_types_and_a_list_does_not():
    parity.assert_same(lambda jax, jnp: jax.jit(lambda x: (
        jnp.stack([x, 1.0]), jnp.array([x, 1.0])))(1.0))
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: jnp.stack([x, x]), (1.0,), (1.0,)))


def test_pow_tangents_are_strongly_typed_as_in_jax():
    """pow's rule converts each contribution to a strong type, whatever the operands'."""
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda y: 2.0 ** y, (1.5,), (1.0,)))
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: x ** 3.0, (1.5,), (1.0,)))
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x, y: x ** y, (1.5, 2.0), (1.0, 1.0)))
    parity.assert_same(lambda jax, jnp: jax.jvp(jax.jit(lambda y: 2.0 ** y), (1.5,), (1.0,)))
    parity.assert_same(lambda jax, jnp: jax.grad(lambda y: 2.0 ** y)(1.5))


def test_integer_exponents_are_not_promoted_as_in_jax():
    """A concrete integer scalar exponent is unrolled (the base keeps its weak type);
    an integer array exponent leaves the result weak only if both operands are."""
    parity.assert_same(lambda jax, jnp: ((-5) ** jnp.int32(2), 2.5 ** jnp.array(3),
                                         jnp.power(0.5, jnp.array([1, -2], jnp.int32)),
                                         jnp.power(jnp.float32(0.5), jnp.array([3]))))
    parity.assert_same(lambda jax, jnp: jax.vmap(lambda n: 0.5 ** n)(jnp.array([1, 2])))


def test_an_integer_power_zero_has_derivative_zero_at_zero():
    """lax.pow takes an integer exponent as it is, and its rule gives x ** 0 the
    derivative 0 even at x = 0 (where y * x ** (y - 1) would be 0 * inf)."""
    x0, n = np.array([0., 0., 2., -1.], np.float32), np.array([0, 1, 0, 2], np.int32)
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x: jnp.sum(jnp.power(x, n)))(x0))
    parity.assert_same(lambda jax, jnp: jax.jit(jax.grad(lambda x: jnp.sum(x ** n)))(x0))
    parity.assert_same(lambda jax, jnp: jax.linearize(lambda x: jax.lax.pow(x, n), x0)[1](x0))
    parity.assert_same(lambda jax, jnp: [jax.grad(jax.grad(lambda x: x ** jnp.array(k)))(0.)
                                         for k in (0, 1, 2, 3, -1)])
    parity.assert_same(lambda jax, jnp: jax.vmap(jax.grad(jnp.power))(x0, n))
    parity.assert_same(lambda jax, jnp: str(jax.make_jaxpr(jax.lax.pow)(x0, n)))


@pytest.mark.parametrize("make", [
    lambda jnp: jnp.array(3.0), lambda jnp: jnp.array([3.0]), lambda jnp: jnp.array(3),
    lambda jnp: jnp.array([1, 2]), lambda jnp: jnp.array(True), lambda jnp: jnp.array([True]),
    lambda jnp: jnp.asarray(2.5), lambda jnp: jnp.asarray([[1.0, 2.0]]),
    lambda jnp: jnp.float32(1) + 1, lambda jnp: jnp.float32(1.5), lambda jnp: jnp.sin(1.0),
    lambda jnp: jnp.sin(1), lambda jnp: jnp.arange(4), lambda jnp: jnp.arange(4.0),
    lambda jnp: jnp.arange(1, 2, 0.25), lambda jnp: jnp.linspace(0, 1, 5),
    lambda jnp: jnp.linspace(0.0, 2.0, 4, endpoint=False), lambda jnp: jnp.zeros(3),
    lambda jnp: jnp.ones((2, 2), jnp.int32), lambda jnp: jnp.zeros_like(jnp.arange(3)),
    lambda jnp: jnp.ones_like(2.0), lambda jnp: jnp.zeros_like(jnp.array([True])),
    lambda jnp: jnp.pi, lambda jnp: jnp.float32(jnp.pi), lambda jnp: jnp.add(1, 2),
    lambda jnp: jnp.multiply(2.0, 3), lambda jnp: jnp.array(2.0) * jnp.arange(3),
    lambda jnp: jnp.arange(3) * 2.0, lambda jnp: jnp.arange(3) / 2,
    lambda jnp: jnp.array([1.0, 2.0]) ** 2, lambda jnp: jnp.array(2) ** 3,
    lambda jnp: jnp.sum(jnp.arange(4.0)), lambda jnp: jnp.mean(jnp.arange(4)),
    lambda jnp: jnp.array(1.0) < jnp.array([2.0, 0.0]), lambda jnp: jnp.arange(3) == 1,
    lambda jnp: jnp.array(1.0) < 2.0, lambda jnp: jnp.sum(jnp.array([True, True, False])),
    lambda jnp: jnp.sum(jnp.arange(3) * 2.0), lambda jnp: jnp.sum(1.0),
    lambda jnp: jnp.max(jnp.array(1.0)), lambda jnp: jnp.mean(jnp.array(2.0)),
    lambda jnp: jnp.stack([1.0, 2]), lambda jnp: jnp.stack([jnp.asarray(1.0), 2.0]),
    lambda jnp: jnp.stack([jnp.float32(1.0), 2.0]),
])
def test_creation_and_weak_types(make):
    parity.assert_same(lambda jax, jnp: make(jnp))


def test_jvp_of_a_comparison_gives_a_float0_tangent():
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: x > 0.5, (V,), (W,)))


def test_numpy_input_of_float64_is_narrowed():
    parity.assert_same(lambda jax, jnp: jnp.sin(np.array([0.5, 1.0])))
    parity.assert_same(lambda jax, jnp: jax.jit(jnp.cos)(np.array([0.5, 1.0])))
    parity.assert_same(lambda jax, jnp: jnp.asarray(np.arange(3)) * 2)


def test_float_to_int_conversion_saturates_as_in_xla():
    """Out of the int32 range a float converts to the nearest end, and nan to 0."""
    v = np.array([3e38, -3e38, np.nan, np.inf, -np.inf, 2.5, -2.5, 2147483520.0], np.float32)
    parity.assert_same(lambda jax, jnp: (jnp.asarray(v).astype(jnp.int32),
                                         jax.jit(lambda a: a.astype(jnp.int32))(v),
                                         jnp.float32(-3e38).astype(jnp.int32)))


@pytest.mark.parametrize("power", [0, 1, 2, 3, -2])
def test_integer_pow_tangents_have_jaxs_types(power):
    """The constant in the rule is weakly typed only beside a weakly typed scalar, and
    powers 1 and 2 need no integer_pow, as in JAX."""
    def run(jax, jnp):
        f = lambda x: x ** power  # noqa: E731
        results = [jax.jvp(f, (x,), (x,)) for x in (1.5, jnp.float32(1.5),
                                                     jnp.array([1.5, 2.]) * 1.0)]
        batched = jax.grad(lambda y: jnp.sum(jax.vmap(lambda x: f(y) * x)(jnp.ones(2))))(1.5)
        return results, batched, str(jax.make_jaxpr(jax.grad(f))(1.5))
    parity.assert_same(run)


def test_linearize_of_jit_forwards_a_known_input_as_it_is():
    """jit's known part hands back an output that is one of its inputs unchanged, as
    JAX's does: a NumPy input stays a NumPy array."""
    y = np.zeros(3, np.float32)
    parity.assert_same(lambda jax, jnp: [
        type(jax.linearize(jax.jit(lambda y: y), y)[0]).__name__,
        type(jax.linearize(jax.jit(lambda y: (y.ravel(), y * 2.)), y)[0][0]).__name__])


def test_booleans_indexed_by_a_traced_index_and_squared():
    v = np.array([True, False, True])
    parity.assert_same(lambda jax, jnp: (
        [jax.jit(lambda v, i: v[i])(v, i) for i in (-5, 0, 1, -1, 7)], jnp.square(v),
        jax.jit(jnp.square)(v)))


@pytest.mark.parametrize("in_axes, out_axes", [(0, 0), (0, -1), (1, 0), (1, 1)])
def test_vmap_moves_the_axis_of_a_numpy_output_with_numpy(in_axes, out_axes):
    """JAX moves a batch axis with the value's own transpose: a NumPy input that comes
    out unchanged stays a NumPy array."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    parity.assert_same(lambda jax, jnp: [
        type(r).__name__ for r in (
            jax.vmap(lambda x: x, in_axes=in_axes, out_axes=out_axes)(x),
            jax.vmap(lambda x: x.astype(jnp.float32), in_axes=in_axes, out_axes=out_axes)(x))])
