"""Transformations composed with each other, and their APIs on pytrees, against JAX."""

from __future__ import annotations

import itertools
from collections import namedtuple

import numpy as np
import pytest

import parity

X3 = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 10 - 1.1
V = np.array([0.3, -1.2, 2.5], np.float32)
W = np.array([1.1, 0.4, -0.7], np.float32)
M = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)

Point = namedtuple("Point", ["x", "y"])


# ---------------------------------------------------------------------------
# Stacks of transformations. Each one maps a function of an array to a function of
# an array of the same shape, so any stack of them can be applied to
#     base(x) = sin(x) * mean(x ** 2) + tanh(x) * mean(cos(x)),
# which works on arrays of every rank: under k vmaps it sees x with k axes fewer.


def base(jnp, x):
    return jnp.sin(x) * jnp.mean(x ** 2) + jnp.tanh(x) * jnp.mean(jnp.cos(x))


def grad_t(jax, jnp, f):
    return lambda x: jax.grad(lambda y: jnp.sum(f(y)))(x)


def jvp_t(jax, jnp, f):
    def g(x):
        y, t = jax.jvp(f, (x,), (jnp.cos(x),))
        return y + 2.0 * t
    return g


def linearize_t(jax, jnp, f):
    def g(x):
        y, f_jvp = jax.linearize(f, x)
        return f_jvp(jnp.ones_like(x)) - y
    return g


def vjp_t(jax, jnp, f):
    def g(x):
        y, f_vjp = jax.vjp(f, x)
        (ct,) = f_vjp(jnp.sin(x))
        return ct * y
    return g


def value_and_grad_t(jax, jnp, f):
    def g(x):
        value, gradient = jax.value_and_grad(lambda y: jnp.sum(f(y)))(x)
        return gradient * value
    return g


TRANSFORMS = {
    "jit": lambda jax, jnp, f: jax.jit(f),
    "grad": grad_t,
    "vmap": lambda jax, jnp, f: jax.vmap(f),
    "vmap_last": lambda jax, jnp, f: jax.vmap(f, in_axes=-1, out_axes=-1),
    "jvp": jvp_t,
    "linearize": linearize_t,
    "vjp": vjp_t,
    "value_and_grad": value_and_grad_t,
}


def apply_stack(jax, jnp, stack, x, f=None):
    """stack = ("grad", "vmap") means grad(vmap(f)), f being base unless given."""
    f = f or (lambda y: base(jnp, y))
    for name in reversed(stack):
        f = TRANSFORMS[name](jax, jnp, f)
    return f(x)


# Every stack of one or two, and a selection of three (test_properties.py draws
# random ones); each transformation appears at every depth.
STACKS = ([(name,) for name in TRANSFORMS]
          + list(itertools.product(TRANSFORMS, repeat=2))
          + [("grad", "grad", "grad"), ("vmap", "grad", "jit"), ("jit", "vmap", "grad"),
             ("grad", "vmap", "jit"), ("jvp", "grad", "vmap"), ("vmap", "jvp", "grad"),
             ("jit", "grad", "jvp"), ("grad", "jit", "vmap"), ("vmap", "vmap", "grad"),
             ("jvp", "jvp", "jit"), ("linearize", "vmap_last", "jit"),
             ("vjp", "jit", "vmap"), ("value_and_grad", "jvp", "vmap_last"),
             ("jit", "jit", "jit")])


@pytest.mark.parametrize("stack", STACKS, ids="-".join)
def test_stack_of_transformations(stack):
    parity.assert_same(lambda jax, jnp: apply_stack(jax, jnp, stack, X3))


# ---------------------------------------------------------------------------
# The classic compositions, on scalar functions, written as a JAX user would.


def scalar_f(jnp, x):
    return jnp.sin(x) * x ** 3 + jnp.exp(-x) / (1.0 + x ** 2)


XS = np.array([0.3, -1.2, 2.5, 0.9], np.float32)

COMPOSITIONS = {
    "grad_grad": lambda jax, jnp, f: jax.grad(jax.grad(f))(0.7),
    "grad_grad_grad": lambda jax, jnp, f: jax.grad(jax.grad(jax.grad(f)))(0.7),
    "vmap_grad": lambda jax, jnp, f: jax.vmap(jax.grad(f))(XS),
    "grad_vmap": lambda jax, jnp, f: jax.grad(lambda xs: jnp.sum(jax.vmap(f)(xs)))(XS),
    "jit_grad": lambda jax, jnp, f: jax.jit(jax.grad(f))(0.7),
    "grad_jit": lambda jax, jnp, f: jax.grad(jax.jit(f))(0.7),
    "jit_vmap": lambda jax, jnp, f: jax.jit(jax.vmap(f))(XS),
    "vmap_jit": lambda jax, jnp, f: jax.vmap(jax.jit(f))(XS),
    "vmap_grad_jit": lambda jax, jnp, f: jax.vmap(jax.grad(jax.jit(f)))(XS),
    "jit_vmap_grad_grad": lambda jax, jnp, f: jax.jit(jax.vmap(jax.grad(jax.grad(f))))(XS),
    "vmap_vmap_grad": lambda jax, jnp, f: jax.vmap(jax.vmap(jax.grad(f)))(XS.reshape(2, 2)),
    "grad_jit_grad": lambda jax, jnp, f: jax.grad(jax.jit(jax.grad(f)))(0.7),
    "jvp_grad": lambda jax, jnp, f: jax.jvp(jax.grad(f), (0.7,), (1.0,)),
    "grad_of_jvp": lambda jax, jnp, f: jax.grad(lambda x: jax.jvp(f, (x,), (1.0,))[1])(0.7),
    "jvp_jvp": lambda jax, jnp, f: jax.jvp(lambda x: jax.jvp(f, (x,), (1.0,))[1], (0.7,), (1.0,)),
    "jvp_jit": lambda jax, jnp, f: jax.jvp(jax.jit(f), (0.7,), (1.0,)),
    "jit_jvp": lambda jax, jnp, f: jax.jit(lambda x: jax.jvp(f, (x,), (1.0,)))(0.7),
    "vmap_jvp": lambda jax, jnp, f: jax.vmap(lambda x: jax.jvp(f, (x,), (1.0,)))(XS),
    "linearize_jit": lambda jax, jnp, f: jax.linearize(jax.jit(f), 0.7)[1](2.0),
    "vjp_jit": lambda jax, jnp, f: jax.vjp(jax.jit(f), 0.7)[1](2.0),
    "jit_jit": lambda jax, jnp, f: jax.jit(jax.jit(f))(0.7),
    "grad_jit_jit": lambda jax, jnp, f: jax.grad(jax.jit(jax.jit(f)))(0.7),
    "value_and_grad_jit": lambda jax, jnp, f: jax.value_and_grad(jax.jit(f))(0.7),
}


@pytest.mark.parametrize("name", COMPOSITIONS)
def test_composition(name):
    parity.assert_same(lambda jax, jnp: COMPOSITIONS[name](jax, jnp, lambda x: scalar_f(jnp, x)))


def test_perturbations_of_nested_grads_are_not_confused():
    # d/dx [x * d/dy (x + y)] = 1: the inner derivative must not see x's perturbation.
    parity.assert_same(
        lambda jax, jnp: jax.grad(lambda x: x * jax.grad(lambda y: x + y)(1.0))(2.0))
    parity.assert_same(
        lambda jax, jnp: jax.grad(lambda x: jax.grad(lambda y: x * y ** 2)(x))(3.0))


def test_jit_closing_over_outer_tracers():
    def f(jax, jnp, x):
        inner = jax.jit(lambda y: y * x + jnp.sin(x))
        return inner(2.0) * inner(jnp.float32(3.0))
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x: f(jax, jnp, x))(0.5))
    parity.assert_same(lambda jax, jnp: jax.vmap(lambda x: f(jax, jnp, x))(XS))
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: f(jax, jnp, x), (0.5,), (1.0,)))
    parity.assert_same(lambda jax, jnp: jax.vmap(jax.grad(lambda x: f(jax, jnp, x)))(XS))


def test_jacobian_and_hessian_by_composition():
    def g(jnp, x):
        return jnp.tanh(x) * jnp.sum(x ** 3)

    def jacobian_rev(jax, jnp):
        rows = jnp.asarray(np.eye(3, dtype=np.float32))
        _, f_vjp = jax.vjp(lambda x: g(jnp, x), V)
        return jax.vmap(lambda ct: f_vjp(ct)[0])(rows)

    def jacobian_fwd(jax, jnp):
        columns = jnp.asarray(np.eye(3, dtype=np.float32))
        return jax.vmap(lambda t: jax.jvp(lambda x: g(jnp, x), (V,), (t,))[1])(columns)

    def hessian(jax, jnp, x):
        columns = jnp.asarray(np.eye(3, dtype=np.float32))
        grad_f = jax.grad(lambda x: jnp.sum(g(jnp, x)))
        return jax.vmap(lambda t: jax.jvp(grad_f, (x,), (t,))[1])(columns)

    parity.assert_same(jacobian_rev)
    parity.assert_same(jacobian_fwd)
    parity.assert_same(lambda jax, jnp: hessian(jax, jnp, V))
    parity.assert_same(lambda jax, jnp: jax.jit(lambda x: hessian(jax, jnp, x))(V))


# ---------------------------------------------------------------------------
# jvp, linearize, vjp, grad and value_and_grad on pytrees.


def test_jvp_with_several_arguments():
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x, y: jnp.sin(x) * y, (V, W), (W, V)))
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x, y: x / y, [V, 2.0], [V, 1.0]))


def test_jvp_with_dicts_and_namedtuples():
    def run(jax, jnp):
        def f(p, q):
            return {"out": p["a"] * jnp.sin(p["b"]) + q.x, "pair": (q.y ** 2, 2.0 * p["a"])}

        primals = ({"a": 2.0, "b": V}, Point(W, M))
        tangents = ({"a": 1.0, "b": W}, Point(V, M * 2.0))
        return jax.jvp(f, primals, tangents)

    parity.assert_same(run)


def test_jvp_output_that_ignores_the_input():
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: (x * 2.0, jnp.ones(2)), (V,), (W,)))
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: 3.0, (1.0,), (1.0,)))


def test_linearize_with_pytrees():
    def run(jax, jnp):
        def f(p, s):
            return (jnp.sin(p["w"]) * s, jnp.sum(p["w"] * p["b"]))
        y, f_jvp = jax.linearize(f, {"b": V, "w": W}, 1.5)
        return y, f_jvp({"b": W, "w": V}, 2.0), f_jvp({"b": V, "w": V}, 0.0)
    parity.assert_same(run)


def test_vjp_with_pytrees():
    def run(jax, jnp):
        def f(x, p):
            return {"s": jnp.sum(x * p.x), "v": jnp.exp(x) * p.y}
        out, f_vjp = jax.vjp(f, V, Point(W, 2.0))
        return out, f_vjp({"s": 1.0, "v": jnp.ones(3)})
    parity.assert_same(run)


def test_vjp_has_aux():
    def run(jax, jnp):
        def f(x):
            y = jnp.sin(x)
            return y * 2.0, {"y": y, "n": 3}
        out, f_vjp, aux = jax.vjp(f, V, has_aux=True)
        return out, f_vjp(W), aux
    parity.assert_same(run)


def loss(jnp, params, x, scale):
    pred = jnp.tanh(jnp.dot(params["w"], x) + params["b"])
    return jnp.sum(pred ** 2) * scale


PARAMS = {"w": M, "b": np.array([0.1, -0.2], np.float32)}


@pytest.mark.parametrize("argnums", [0, 1, 2, -1, (0,), (0, 2), (2, 0), (0, 1, 2)])
def test_grad_and_value_and_grad_argnums(argnums):
    parity.assert_same(
        lambda jax, jnp: jax.grad(lambda *a: loss(jnp, *a), argnums)(PARAMS, V, 0.5))
    parity.assert_same(
        lambda jax, jnp: jax.value_and_grad(lambda *a: loss(jnp, *a), argnums)(PARAMS, V, 0.5))


def test_grad_has_aux():
    def f(jnp, p, x):
        y = loss(jnp, p, x, 1.0)
        return y, {"loss": y, "norm": jnp.sum(x ** 2), "tag": (1, None)}
    parity.assert_same(lambda jax, jnp: jax.grad(lambda *a: f(jnp, *a), has_aux=True)(PARAMS, V))
    parity.assert_same(lambda jax, jnp: jax.value_and_grad(
        lambda *a: f(jnp, *a), argnums=(0, 1), has_aux=True)(PARAMS, V))


def test_grad_of_pytree_inputs():
    parity.assert_same(lambda jax, jnp: jax.grad(
        lambda p: jnp.sum(p.x * jnp.sin(p.y)))(Point(V, W)))
    parity.assert_same(lambda jax, jnp: jax.grad(
        lambda ps: ps[0] * ps[1][0] + jnp.sum(ps[1][1]))([2.0, (3.0, V)]))
    parity.assert_same(lambda jax, jnp: jax.grad(
        lambda p: p["a"] ** 2 * (p["b"] if p["c"] is None else 0.0))({"a": 1.5, "b": 2.0, "c": None}))


def test_grad_of_unused_input_is_zero():
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x, y: jnp.sum(y * 2.0), (0, 1))(V, W))
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x: 1.0)(V))


# ---------------------------------------------------------------------------
# vmap's in_axes and out_axes. Each case: (batched function, arguments).

VMAPS = {
    "in_axes_none": (lambda jax, jnp: jax.vmap(lambda x, y: x * y, in_axes=(0, None)), (M, V)),
    "in_axes_first_none": (lambda jax, jnp: jax.vmap(lambda x, y: x - y, (None, 0)), (V, M)),
    "in_axes_1": (lambda jax, jnp: jax.vmap(lambda x: jnp.sum(x ** 2), in_axes=1), (M,)),
    "in_axes_mixed": (lambda jax, jnp: jax.vmap(jnp.dot, (1, 0)), (M, M.T)),
    "in_axes_negative": (lambda jax, jnp: jax.vmap(jnp.sin, in_axes=-2), (M,)),
    "in_axes_list": (lambda jax, jnp: jax.vmap(lambda x, y: x + y, [0, None]), (M, 1.5)),
    "in_axes_none_python_scalar": (
        lambda jax, jnp: jax.vmap(lambda x, y: x * y, (0, None)), (V, 2.0)),
    "out_axes_1": (lambda jax, jnp: jax.vmap(lambda x: x * 2.0, out_axes=1), (M,)),
    "out_axes_negative": (lambda jax, jnp: jax.vmap(lambda x: x * x, out_axes=-1), (M,)),
    "in_and_out_axes": (lambda jax, jnp: jax.vmap(jnp.exp, in_axes=1, out_axes=1), (M,)),
    "out_axes_tuple": (
        lambda jax, jnp: jax.vmap(lambda x: (x, jnp.sum(x)), out_axes=(1, 0)), (M,)),
    "out_axes_none_for_unbatched": (lambda jax, jnp: jax.vmap(
        lambda x: (x * 2.0, jnp.ones(2)), out_axes=(0, None)), (V,)),
    "unbatched_output_broadcast": (lambda jax, jnp: jax.vmap(lambda x: jnp.ones(2) * 3.0), (V,)),
    "python_scalar_output": (lambda jax, jnp: jax.vmap(lambda x: 2.0), (V,)),
    "dict_in_axes": (lambda jax, jnp: jax.vmap(
        lambda p: p["a"] * p["b"], in_axes=({"a": 0, "b": None},)), ({"a": M, "b": V},)),
    "one_axis_for_a_dict": (lambda jax, jnp: jax.vmap(
        lambda p: p["a"] + p["b"], in_axes=(1,)), ({"a": M, "b": M},)),
    "namedtuple_in_axes": (lambda jax, jnp: jax.vmap(
        lambda p: p.x * p.y, in_axes=(Point(0, None),)), (Point(M, V),)),
    "dict_out_axes": (lambda jax, jnp: jax.vmap(
        lambda x: {"s": jnp.sum(x), "x": x}, out_axes={"s": 0, "x": 1}), (M,)),
    "tuple_input_and_output": (lambda jax, jnp: jax.vmap(lambda xy: (xy[1], xy[0])), ((V, W),)),
    "nested_vmap": (lambda jax, jnp: jax.vmap(
        jax.vmap(lambda x, y: x * y, in_axes=(0, None)), in_axes=(None, 0)), (V, W)),
    "nested_vmap_axes": (lambda jax, jnp: jax.vmap(
        jax.vmap(jnp.sin, in_axes=1, out_axes=0), in_axes=2, out_axes=2), (X3,)),
    "matmul_batched_left": (lambda jax, jnp: jax.vmap(lambda a: a @ M.T), (X3.reshape(4, 2, 3),)),
    "matmul_batched_right": (
        lambda jax, jnp: jax.vmap(lambda b: M @ b, in_axes=2), (X3.reshape(3, 2, 4),)),
    "matmul_both_batched": (lambda jax, jnp: jax.vmap(lambda a, b: a @ b, in_axes=(0, 2)),
                            (X3.reshape(4, 2, 3), X3.reshape(3, 2, 4))),
    "dot_batched_vector": (lambda jax, jnp: jax.vmap(jnp.dot, in_axes=(None, 0)), (M, M)),
    "where_batched_predicate": (lambda jax, jnp: jax.vmap(
        lambda c, x: jnp.where(c, x, 0.0), in_axes=(0, None)), (M > 0, V)),
    "where_scalar_predicate": (lambda jax, jnp: jax.vmap(
        lambda s, x: jnp.where(s > 0, x, -x), in_axes=(0, None)), (V, W)),
    "reductions_with_axes": (lambda jax, jnp: jax.vmap(
        lambda x: (jnp.sum(x, axis=0), jnp.max(x, axis=1), jnp.mean(x)), in_axes=1), (X3,)),
    "reshape_transpose": (lambda jax, jnp: jax.vmap(
        lambda x: jnp.transpose(jnp.reshape(x, (2, 3))), in_axes=1), (X3.reshape(6, 4),)),
    "indexing": (lambda jax, jnp: jax.vmap(lambda x: x[1, ::2] + x[-1, 1:3], in_axes=2), (X3,)),
    "broadcast_to": (lambda jax, jnp: jax.vmap(lambda x: jnp.broadcast_to(x, (2, 3))), (V,)),
}


def float_leaves_total(jax, jnp, tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return sum(jnp.sum(jnp.sin(leaf)) for leaf in leaves if jnp.asarray(leaf).dtype == jnp.float32)


def float_argnums(args):
    return tuple(i for i, a in enumerate(args)
                 if all(np.asarray(leaf).dtype.kind == "f" or isinstance(leaf, float)
                        for leaf in _leaves(a)))


def _leaves(tree):
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    if isinstance(tree, tuple):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]


def as_arrays(jax, jnp, args):
    """NumPy arguments as arrays (JAX's vmap hands back NumPy arrays it only moves)."""
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a) if isinstance(a, np.ndarray) else a, args)


def vmap_eval(jax, jnp, name):
    make, args = VMAPS[name]
    return make(jax, jnp)(*as_arrays(jax, jnp, args))


def vmap_jit(jax, jnp, name):
    make, args = VMAPS[name]
    return jax.jit(make(jax, jnp))(*args)


def vmap_grad(jax, jnp, name):
    make, args = VMAPS[name]
    batched = make(jax, jnp)
    total = lambda *a: float_leaves_total(jax, jnp, batched(*a))  # noqa: E731
    return jax.grad(total, float_argnums(args))(*args)


def vmap_vmap(jax, jnp, name):
    """One more vmap outside, over a stack of two copies of every argument."""
    make, args = VMAPS[name]
    def two(a):
        a = np.asarray(a)
        return np.stack([a, ~a if a.dtype == bool else a * np.float32(2)])

    stacked = jax.tree_util.tree_map(two, args)
    return jax.vmap(make(jax, jnp))(*as_arrays(jax, jnp, stacked))


VMAP_RUNS = {"eval": vmap_eval, "jit": vmap_jit, "grad": vmap_grad, "vmap": vmap_vmap}


@pytest.mark.parametrize("run", VMAP_RUNS)
@pytest.mark.parametrize("name", VMAPS)
def test_vmap_axes(name, run):
    parity.assert_same(lambda jax, jnp: VMAP_RUNS[run](jax, jnp, name))


# ---------------------------------------------------------------------------
# Indexing with a traced integer: a row of a Jacobian, a loop counter.

X24 = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 10 - 1.1
TRACED_INDEXING = {
    "jacobian_rows_by_vmap": lambda jax, jnp: jax.vmap(
        jax.grad(lambda x, i: (jnp.sin(x) * jnp.sum(x))[i]), in_axes=(None, 0))(
        jnp.array([0.5, -1., 2.]), jnp.arange(3)),
    "loop_counter": lambda jax, jnp: jax.jit(lambda x, n: jax.lax.fori_loop(
        0, n, lambda i, acc: acc + x[i] * i, 0.))(jnp.array([1., 2., 3., 4.]), 3),
    "mixed_with_slices": lambda jax, jnp: jax.jit(lambda y, i, j: (y[1:, i, ::2], y[0, :, j],
                                                                   y[i, j]))(X24, 2, -1),
    "clamped_and_negative": lambda jax, jnp: jax.jit(lambda x, i, j: (x[i], x[j]))(
        jnp.arange(3.), 7, -5),
    "grad_and_vmap_of_both": lambda jax, jnp: (
        jax.jit(jax.grad(lambda x, i: jnp.sum(x[i] ** 2)))(X24, 1),
        jax.vmap(lambda row, i: row[i])(X24[0], jnp.array([0, 2, 3]))),
    "nan_in_other_entries": lambda jax, jnp: jax.grad(lambda x, i: x[i] * 2.)(
        jnp.array([jnp.nan, 1., jnp.inf]), 1),
    "concrete_integer_arrays": lambda jax, jnp: (
        jnp.arange(5.)[jnp.array(2)], jnp.arange(5.)[np.int32(3)],
        jnp.arange(6.).reshape(2, 3)[jnp.array(1), 2]),
}


@pytest.mark.parametrize("name", TRACED_INDEXING)
def test_indexing_with_a_traced_integer(name):
    parity.assert_same(TRACED_INDEXING[name])


def test_a_traced_index_must_be_an_integer_scalar():
    def run(jax, jnp):
        try:
            jax.jit(lambda x, i: x[i])(jnp.arange(3.), 1.0)
        except TypeError as e:
            return type(e).__name__
    parity.assert_same(run)
