"""What minijax prints is, character for character, what JAX prints.

parity.assert_same compares printed numbers at float32 tolerance and ignores
spacing; these tests compare the exact text. Values are chosen so that both
libraries compute them bit for bit (NumPy and XLA may round transcendental
functions differently in the last place, which would change the digits shown).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import parity


def exact_text(make_text) -> str:
    """``make_text(lib, lib.numpy)`` on both libraries; the two strings must be equal."""
    texts = []
    for name in ["minijax", "jax"]:
        lib = importlib.import_module(name)
        texts.append(make_text(lib, importlib.import_module(f"{name}.numpy")))
    assert texts[0] == texts[1], f"\nminijax: {texts[0]!r}\nJAX:     {texts[1]!r}"
    return texts[0]


ARRAYS = {
    "float_scalar_weak": lambda jnp: jnp.array(3.0),
    "float_scalar_strong": lambda jnp: jnp.float32(3.0),
    "float_scalar_fraction": lambda jnp: jnp.float32(-0.5),
    "float_scalar_big": lambda jnp: jnp.float32(1e10),
    "float_scalar_tiny": lambda jnp: jnp.float32(1e-7),
    "float_scalar_computed": lambda jnp: jnp.float32(1.5) * 2 - 0.25,
    "int_scalar_weak": lambda jnp: jnp.asarray(3),
    "int_scalar_strong": lambda jnp: jnp.arange(5)[3],
    "bool_scalar": lambda jnp: jnp.array(True),
    "bool_scalar_from_comparison": lambda jnp: jnp.arange(3)[1] > 0,
    "float_vector": lambda jnp: jnp.array([1.0, 2.5, -3.0]),
    "float_vector_weak": lambda jnp: jnp.arange(3) * 2.0,
    "float_vector_whole_numbers": lambda jnp: jnp.array([1.0, 2.0, 3.0]),
    "int_vector": lambda jnp: jnp.arange(5),
    "int_vector_negative": lambda jnp: jnp.arange(5) - 2,
    "int_vector_weak": lambda jnp: jnp.arange(3) * 0 + jnp.asarray([1, 2, 3]),
    "bool_vector": lambda jnp: jnp.arange(4) > 1,
    "float_matrix": lambda jnp: jnp.ones((2, 3)) / 4,
    "int_matrix": lambda jnp: jnp.reshape(jnp.arange(6), (2, 3)),
    "bool_matrix": lambda jnp: jnp.reshape(jnp.arange(6), (2, 3)) > 2,
    "weak_matrix": lambda jnp: jnp.ones((2, 2), jnp.int32) * 0.5,
    "mixed_magnitudes": lambda jnp: jnp.array([[1e-4, 100.0], [3.5, -2.0]]),
    "large_values": lambda jnp: jnp.array([1e-3, 1e5, 123456.75]),
    "tiny_values": lambda jnp: jnp.array([1e-8, 1.0]),
    "array_3d": lambda jnp: jnp.reshape(jnp.arange(12.0), (2, 3, 2)),
    "nan_and_inf": lambda jnp: jnp.array([np.nan, np.inf, -np.inf, 1.0]),
    "nan_scalar": lambda jnp: jnp.log(-1.0),
    "inf_scalar": lambda jnp: jnp.float32(np.inf),
    "negative_zero": lambda jnp: jnp.array([-0.0, 0.0]),
    "empty": lambda jnp: jnp.zeros(0),
    "empty_2d": lambda jnp: jnp.zeros((0, 3)),
    "empty_int": lambda jnp: jnp.arange(0),
    "wrapped_floats": lambda jnp: jnp.arange(20.0) * 0.125,
    "wrapped_ints": lambda jnp: jnp.arange(30),
    "summarized": lambda jnp: jnp.arange(2000.0),
    "grad_result": lambda jnp: jnp.float32(2.0) * jnp.float32(0.75),
}


@pytest.mark.parametrize("name", ARRAYS)
def test_array_repr_and_str(name):
    exact_text(lambda jax, jnp: repr(ARRAYS[name](jnp)))
    exact_text(lambda jax, jnp: str(ARRAYS[name](jnp)))


@pytest.mark.parametrize("make", [lambda jnp: jnp.arange(20.0) / 4,
                                  lambda jnp: jnp.arange(12.0) - 6])
def test_repr_whose_last_line_is_too_long_for_the_dtype(make):
    exact_text(lambda jax, jnp: repr(make(jnp)))


def test_formatting_and_containers():
    exact_text(lambda jax, jnp: f"{jnp.float32(1.5):.3f} {jnp.float32(0.125):8.4f} "
                                f"{jnp.asarray(3):d} {jnp.float32(2.5)}")
    exact_text(lambda jax, jnp: str([jnp.float32(1.5), jnp.arange(2)]))
    exact_text(lambda jax, jnp: str({"a": jnp.ones(2), "b": (jnp.array(True),)}))
    exact_text(lambda jax, jnp: str(jax.grad(lambda x, y: x * y, (0, 1))(1.0, 2.0)))
    exact_text(lambda jax, jnp: repr(jax.jvp(lambda x: x * 3.0, (2.0,), (1.0,))))
    exact_text(lambda jax, jnp: repr(jax.vmap(lambda x: x * 2)(jnp.arange(3))))


def test_printing_inside_a_cell_is_compared():
    parity.assert_same(lambda jax, jnp: print(jax.grad(jnp.sin)(1.0), jnp.arange(3) / 3))


# ---------------------------------------------------------------------------
# Jaxprs: only where minijax stages the same equations as JAX. (Elsewhere it
# differs by design: it broadcasts a scalar beside an array with an explicit
# broadcast_in_dim equation; see tests/differences.py.)

V = np.array([0.3, -1.2, 2.5], np.float32)
M = np.ones((2, 3), np.float32)

JAXPRS = {
    "sin_times_two": (lambda jax, jnp: lambda x: jnp.sin(x) * 2.0, (3.0,)),
    "sin_times_y": (lambda jax, jnp: lambda x, y: jnp.sin(x) * y, (3.0, 4.0)),
    "grad_of_log1pexp": (lambda jax, jnp: jax.grad(lambda x: jnp.log(1.0 + jnp.exp(x))), (3.0,)),
    "grad_of_sin": (lambda jax, jnp: jax.grad(jnp.sin), (3.0,)),
    "grad_of_cos": (lambda jax, jnp: jax.grad(jnp.cos), (3.0,)),
    "grad_of_exp": (lambda jax, jnp: jax.grad(jnp.exp), (3.0,)),
    "grad_of_log": (lambda jax, jnp: jax.grad(jnp.log), (3.0,)),
    "jvp_of_sin": (lambda jax, jnp: lambda x, t: jax.jvp(jnp.sin, (x,), (t,)), (3.0, 1.0)),
    "vmap_of_sin": (lambda jax, jnp: jax.vmap(jnp.sin), (V,)),
    "vmap_of_mul": (lambda jax, jnp: jax.vmap(lambda x, y: x * y), (V, V)),
    "elementwise_chain": (lambda jax, jnp: lambda x: jnp.exp(jnp.tanh(x)) + x, (M,)),
    "long_chain": (lambda jax, jnp: lambda x: jnp.sin(jnp.cos(jnp.exp(jnp.tanh(jnp.log1p(x))))),
                   (V,)),
    "slices": (lambda jax, jnp: lambda x: x[1:] - x[:-1], (V,)),
    "jit_inside": (lambda jax, jnp: lambda x: jax.jit(jnp.sin)(x) * 2.0, (1.0,)),
    "matmul": (lambda jax, jnp: lambda x, y: x @ y, (M, M.T)),
    "dot": (lambda jax, jnp: jnp.dot, (V, V)),
    "transpose": (lambda jax, jnp: lambda x: x.T, (M,)),
    "square": (lambda jax, jnp: lambda x: x ** 2, (1.0,)),
    "negative": (lambda jax, jnp: lambda x: -x, (V,)),
    "numpy_constant": (lambda jax, jnp: lambda x: x * np.arange(3.0, dtype=np.float32), (V,)),
    "three_inputs": (lambda jax, jnp: lambda x, y, z: x * y + z, (V, V, V)),
    "divide_maximum_abs": (lambda jax, jnp: lambda x, y: jnp.abs(jnp.maximum(x / y, y)), (V, V)),
    "log_minus_exp": (lambda jax, jnp: lambda x: jnp.log(x) - jnp.exp(x), (V,)),
    "two_outputs": (lambda jax, jnp: lambda x: (x, jnp.sin(x)), (V,)),
    "pytree_input": (lambda jax, jnp: lambda p: p["a"] * p["b"], ({"a": 1.0, "b": 2.0},)),
    # Two tangents are added with add or sub itself, not add_any.
    "jvp_of_add": (lambda jax, jnp: lambda x, y: jax.jvp(jnp.add, (x, y), (y, x)), (V, V)),
    "jvp_of_x_plus_x": (lambda jax, jnp: lambda x, t: jax.jvp(lambda a: a + a, (x,), (t,)),
                        (3.0, 1.0)),
    "jvp_of_sub": (lambda jax, jnp: lambda x, y: jax.jvp(jnp.subtract, (x, y), (y, x)), (V, V)),
    "jvp_of_sub_in_y": (lambda jax, jnp: lambda x, y: jax.jvp(lambda b: x - b, (y,), (x,)),
                        (V, V)),
    "linearize_of_add": (lambda jax, jnp: lambda x, t: jax.linearize(
        lambda a: jnp.sin(a) + a, x)[1](t), (3.0, 1.0)),
    "vmap_of_jvp_of_sub": (lambda jax, jnp: jax.vmap(lambda x, t: jax.jvp(
        lambda a: jnp.sin(a) - jnp.cos(a), (x,), (t,))), (V, V)),
    # pow's tangents are strongly typed, even for weak operands.
    "jvp_of_pow": (lambda jax, jnp: lambda x, y, t: jax.jvp(
        lambda a, b: a ** b, (x, y), (t, t)), (3.0, 2.0, 1.0)),
    "jvp_of_pow_in_y": (lambda jax, jnp: lambda x, y, t: jax.jvp(
        lambda b: x ** b, (y,), (t,)), (3.0, 2.0, 1.0)),
    # The conversion of a scalar constant is folded, not staged.
    "jvp_of_astype_at_a_python_float": (lambda jax, jnp: lambda t: jax.jvp(
        lambda a: a.astype(jnp.float32) * a, (3.0,), (t,)), (1.0,)),
    "jvp_of_a_power_of_two": (lambda jax, jnp: lambda x, t: jax.jvp(
        lambda a: a ** 2.0, (x,), (t,)), (3.0, 1.0)),
    # broadcast_in_dim printed as JAX prints it: no shape, no empty broadcast_dimensions.
    "broadcast_to": (lambda jax, jnp: lambda x: jnp.broadcast_to(x, (3, 2)), (V[:2],)),
    "broadcast_a_scalar": (lambda jax, jnp: lambda x: jnp.broadcast_to(x, (3, 2)), (1.0,)),
}


@pytest.mark.parametrize("name", JAXPRS)
def test_jaxpr_text(name):
    make, args = JAXPRS[name]
    exact_text(lambda jax, jnp: str(jax.make_jaxpr(make(jax, jnp))(*args)))


def test_jaxpr_with_static_argnums():
    exact_text(lambda jax, jnp: str(jax.make_jaxpr(lambda x, n: x * n, static_argnums=1)(1.0, 3)))


def test_jaxpr_of_grad_of_log1pexp_is_the_text_of_the_tutorial():
    text = exact_text(lambda jax, jnp: str(jax.make_jaxpr(
        jax.grad(lambda x: jnp.log(1.0 + jnp.exp(x))))(3.0)))
    assert text == ("{ lambda ; a:f32[]. let\n"
                    "    b:f32[] = exp a\n"
                    "    c:f32[] = add 1.0:f32[] b\n"
                    "    _:f32[] = log c\n"
                    "    d:f32[] = div 1.0:f32[] c\n"
                    "    e:f32[] = mul d b\n"
                    "  in (e,) }")


def test_jaxpr_without_equations():
    exact_text(lambda jax, jnp: str(jax.make_jaxpr(lambda x: x)(V)))


def test_jaxpr_with_a_constant_output():
    exact_text(lambda jax, jnp: str(jax.make_jaxpr(lambda x: (x * 2.0, 2.0))(1.0)))
