"""What the chapters "Reverse mode" and "Batching with vmap" rely on, beside JAX.

Each test runs on minijax and on JAX through parity.assert_same, which compares what
the function prints, returns and raises. Known differences from JAX are marked
xfail(strict=True) with the reason, so a fix shows up as an unexpected pass.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from parity import assert_same


def log1pexp(jnp):
    return lambda x: jnp.log(1.0 + jnp.exp(x))


# ---------------------------------------------------------------------------
# Reverse mode


def test_linearize_and_vjp_of_pytrees():
    def pytrees(jax, jnp):
        _, f_jvp = jax.linearize(lambda a, b: (a * b, jnp.sin(a) + b), 1.0, 2.0)
        _, f_vjp = jax.vjp(lambda d: {"s": d["a"] * d["b"], "t": jnp.sin(d["a"])},
                           {"a": 1.0, "b": 2.0})
        return f_jvp(1.0, 0.5), f_jvp(2.0, 1.0), f_vjp({"s": 1.0, "t": 2.0})
    assert_same(pytrees)


def test_argnums_and_has_aux():
    def options(jax, jnp):
        def g(x, y):
            return jnp.sin(x) * y, {"cos y": jnp.cos(y)}
        return (jax.grad(g, argnums=1, has_aux=True)(2.0, 3.0),
                jax.grad(g, argnums=(0, 1), has_aux=True)(2.0, 3.0),
                jax.value_and_grad(g, argnums=-1, has_aux=True)(2.0, 3.0))
    assert_same(options)


def test_the_gradient_of_log1pexp_is_nan_at_100_and_its_jaxpr_matches():
    def nan_gradient(jax, jnp):
        f = log1pexp(jnp)
        print(jax.make_jaxpr(jax.grad(f))(100.0))
        return jax.grad(f)(100.0), jax.jit(jax.grad(f))(3.0)
    assert_same(nan_gradient)


def test_higher_derivatives_through_jit():
    def higher(jax, jnp):
        f = jax.jit(lambda x: jnp.sin(x) * x)
        return (jax.grad(jax.grad(f))(1.0), jax.grad(jax.grad(jax.grad(jnp.sin)))(1.0),
                jax.jit(jax.grad(jax.grad(f)))(1.0))
    assert_same(higher)


def test_grad_refuses_vector_outputs_and_integer_inputs():
    def refusals(jax, jnp):
        for call in (lambda: jax.grad(jnp.sin)(jnp.ones(2)),
                     lambda: jax.grad(lambda x: x * 2.0)(3)):
            try:
                call()
            except TypeError as e:
                print(type(e).__name__, str(e).split(". ")[0])
    assert_same(refusals)


# ---------------------------------------------------------------------------
# vmap


def test_in_axes_and_out_axes_pytrees():
    def axes(jax, jnp):
        a = jnp.arange(6.0).reshape((2, 3))
        params = {"w": jnp.array([1.0, 2.0, 3.0]), "b": 0.5}
        affine = lambda p, x: p["w"] * x + p["b"]  # noqa: E731
        return (jax.vmap(affine, in_axes=({"w": 0, "b": None}, None))(params, 2.0),
                jax.vmap(lambda x: {"d": 2 * x, "t": jnp.sum(x)},
                         out_axes={"d": 1, "t": 0})(a),
                jax.vmap(lambda x: (x * 2.0, 1.0), out_axes=(0, None))(jnp.arange(3.0)),
                jax.vmap(jnp.sum, in_axes=-1)(a),
                jax.vmap(lambda x: x * 2.0, out_axes=-1)(a))
    assert_same(axes)


def test_per_example_gradients_average_to_the_gradient_of_the_mean():
    def per_example(jax, jnp):
        def loss(params, x, y):
            return (params["w"] * x + params["b"] - y) ** 2

        xs = jnp.linspace(-1.0, 1.0, 1000)
        ys = jnp.sin(3.0 * xs) + 0.5
        params = {"w": 1.0, "b": 0.0}
        grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)
        mean = jax.grad(lambda p: jnp.mean(jax.vmap(loss, in_axes=(None, 0, 0))(p, xs, ys)))
        return grads, mean(params)
    assert_same(per_example)


def test_vmap_and_jit_compose_in_both_orders():
    def orders(jax, jnp):
        f = lambda x: jnp.sin(x) * jnp.cos(x)  # noqa: E731
        xs = jnp.arange(3.0)
        return (jax.vmap(jax.jit(f))(xs), jax.jit(jax.vmap(f))(xs),
                jax.vmap(jax.jit(jax.grad(log1pexp(jnp))))(xs),
                jax.grad(lambda x: jnp.sum(jax.vmap(jax.jit(jnp.sin))(x)))(xs))
    assert_same(orders)


def test_batched_dot_general_prints_as_in_jax():
    def dots(jax, jnp):
        m = jnp.arange(6.0).reshape((2, 3))
        xs = jnp.arange(12.0).reshape((4, 3))
        print(jax.make_jaxpr(jax.vmap(lambda x: m @ x))(xs))
        print(jax.make_jaxpr(jax.vmap(jnp.dot))(xs, xs))
    assert_same(dots)


def print_vmap_refusals(jax, jnp, describe):
    """Map over axes of different sizes, then over no axis; print what each raises."""
    for call in (lambda: jax.vmap(lambda x, y: x + y)(jnp.ones(3), jnp.ones(4)),
                 lambda: jax.vmap(jnp.sin, in_axes=None)(jnp.ones(3))):
        try:
            call()
        except ValueError as e:
            print(describe(e))


def test_vmap_refuses_inconsistent_sizes_and_no_mapped_axis():
    assert_same(lambda jax, jnp: print_vmap_refusals(jax, jnp, str))


Pair = namedtuple("Pair", ["x"])
INCONSISTENT_SIZES = {
    "negative_axis": lambda jax, jnp: jax.vmap(lambda x, y: x + y, in_axes=(-1, 0))(
        jnp.ones(3), jnp.ones(4)),
    "most_axes": lambda jax, jnp: jax.vmap(lambda x, y, z: x + y + z)(
        jnp.ones(3), jnp.ones(4), jnp.ones(4)),
    "some_axes": lambda jax, jnp: jax.vmap(lambda a, b, c, d, e: a)(
        jnp.ones(3), jnp.ones(4), jnp.ones(4), jnp.ones(3), jnp.ones(3)),
    "star_args": lambda jax, jnp: jax.vmap(lambda *a: a[0])(jnp.ones(3), jnp.ones(4)),
    "axis_size": lambda jax, jnp: jax.vmap(lambda p: p, axis_size=5)({"a": jnp.ones(3)}),
    "paths": lambda jax, jnp: jax.vmap(lambda p: p[0] + p[1].x)(
        (jnp.ones(3), Pair(jnp.ones((2, 3))))),
}


@pytest.mark.parametrize("name", INCONSISTENT_SIZES)
def test_inconsistent_sizes_name_the_arguments_as_jax_does(name):
    def run(jax, jnp):
        try:
            INCONSISTENT_SIZES[name](jax, jnp)
        except ValueError as e:
            return str(e)
    assert_same(run)


def test_axis_size_maps_a_function_of_unmapped_arguments():
    assert_same(lambda jax, jnp: (
        jax.vmap(lambda x: x * 2.0, in_axes=None, axis_size=2)(jnp.ones(3)),
        jax.vmap(lambda x, y: x * y, in_axes=(0, None), axis_size=3)(jnp.arange(3.0), 2.0),
        jax.grad(lambda y: jnp.sum(jax.vmap(jnp.sin, in_axes=None, axis_size=4)(y)))(0.5)))


def test_matplotlib_plots_arrays_as_given():
    """plt.plot indexes its inputs with x[:, np.newaxis]; the chapter plots arrays."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def plotted(jax, jnp):
        xs = jnp.linspace(-4.0, 4.0, 5)
        figure = plt.figure()
        [line] = plt.plot(xs, jax.vmap(jax.grad(jnp.tanh))(xs))
        plt.close(figure)
        return xs[:, None], np.asarray(line.get_ydata())
    assert_same(plotted)


def test_unchanged_aux_input_is_returned_as_given():
    assert_same(lambda jax, jnp: jax.grad(lambda x: (x * 2.0, x), has_aux=True)(3.0))


def test_vmap_returns_an_unchanged_input_as_given():
    assert_same(lambda jax, jnp: (jax.vmap(lambda x: x)(np.ones(3)),
                                  jax.vmap(lambda x: x * 2)(np.ones(3))))


# ---------------------------------------------------------------------------
# Known differences from JAX


@pytest.mark.xfail(strict=True, reason=(
    "JAX on CPU flushes float32 subnormals to zero; minijax (NumPy) keeps them, so "
    "grad(log1pexp)(88.) is 0.0 in JAX (1/(1+e^88) underflows to 0) and 0.99999994 "
    "in minijax"))
def test_subnormals_flush_to_zero_as_in_jax():
    assert_same(lambda jax, jnp: jax.grad(log1pexp(jnp))(88.0))


def test_grad_integer_input_message_matches_jax_exactly():
    def message(jax, jnp):
        try:
            jax.grad(lambda x: x * 2.0)(3)
        except TypeError as e:
            print(e)
    assert_same(message)
