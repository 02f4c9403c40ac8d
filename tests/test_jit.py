"""jit against JAX: when it traces, static arguments, pytrees, and the code it generates."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import minijax
import minijax.numpy as mjnp
import parity
from benchmarks.staging import op_chain

V = np.array([0.3, -1.2, 2.5], np.float32)
W = np.array([1.1, 0.4, -0.7], np.float32)
M = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)


def test_traces_once_per_input_signature():
    def run(jax, jnp):
        traces = []

        def f(x, y):
            traces.append(1)  # a Python side effect runs only while tracing
            return x * y + 1.0

        g = jax.jit(f)
        counts = []

        def call(*args, **kwargs):
            out = g(*args, **kwargs)
            counts.append(len(traces))
            return out

        outs = [
            call(V, W), call(V, W), call(V * 2, W),  # same shapes and dtypes: traced once
            call(M, M),                              # new shape
            call(np.arange(3), np.arange(3)),        # new dtype
            call(1.0, 2.0), call(3.0, 4.0),          # weakly typed scalars
            call(np.float32(1.0), np.float32(2.0)),  # strong scalars: a new weak type
            call(jnp.array(1.0), 2.0),               # a weak array is like a Python float
            call(1, 2),                              # weak ints
            call(True, 2.0),                         # a bool
            call(x=V, y=W),                          # keyword arguments
        ]
        jax.jit(f)(V, W)  # a second jit of the same function shares its cache
        counts.append(len(traces))
        print(counts)
        return outs

    parity.assert_same(run)


def test_the_traced_function_sees_abstract_values():
    def run(jax, jnp):
        seen = []

        def f(x):
            seen.append((x.shape, x.dtype.name, x.ndim))
            return x.sum()

        jax.jit(f)(M)
        jax.jit(f)(np.arange(4))
        return seen

    parity.assert_same(run)


def test_static_argnums():
    def run(jax, jnp):
        traces = []

        def f(x, n):
            traces.append(n)
            for _ in range(n):  # Python control flow on a static argument
                x = jnp.sin(x)
            return x if n > 1 else -x

        by_int = jax.jit(f, static_argnums=1)
        by_tuple = jax.jit(lambda x, n: f(x, n), static_argnums=(1,))
        by_negative = jax.jit(lambda x, n: f(x, n), static_argnums=-1)
        outs = [by_int(V, 2), by_int(V, 2), by_int(V, 3), by_int(W, 3), by_int(V, 1),
                by_tuple(V, 2), by_tuple(M, 2), by_negative(V, 3)]
        return outs, traces

    parity.assert_same(run)


def test_static_argument_that_is_a_string():
    def run(jax, jnp):
        traces = []

        def f(mode, x):
            traces.append(mode)
            return jnp.sin(x) if mode == "sin" else jnp.cos(x)

        g = jax.jit(f, static_argnums=0)
        return [g("sin", V), g("cos", V), g("sin", W)], traces

    parity.assert_same(run)


@pytest.mark.parametrize("fn", [
    lambda jnp: lambda p: {"s": p["a"] + p["b"], "t": (p["a"],)},
    lambda jnp: lambda p: [p["a"] * p["b"], None, (jnp.sum(p["a"]),)],
])
def test_pytree_inputs_and_outputs(fn):
    parity.assert_same(lambda jax, jnp: jax.jit(fn(jnp))({"a": V, "b": 1.0}))


@pytest.mark.parametrize("fn", [
    lambda jnp: lambda x: x,
    lambda jnp: lambda x: (x, 2.0, 3, True),
    lambda jnp: lambda x: x * np.arange(3.0),              # a NumPy constant
    lambda jnp: lambda x: x + jnp.array([1.0, 2.0, 3.0]),  # a minijax/JAX constant
    lambda jnp: lambda x: jnp.ones(2),                     # ignores its input
    lambda jnp: lambda x: x * 0.5 - 1,
])
@pytest.mark.parametrize("arg", [V, 2.0, 2, np.float32(2.0)],
                         ids=["vector", "float", "int", "float32"])
def test_outputs_and_constants(fn, arg):
    parity.assert_same(lambda jax, jnp: jax.jit(fn(jnp))(arg))


def test_keyword_arguments():
    parity.assert_same(lambda jax, jnp: jax.jit(lambda x, y=2.0: x * y)(V, y=3.0))
    parity.assert_same(lambda jax, jnp: jax.jit(lambda x, y=2.0: x * y)(V))


def test_indexing_under_jit():
    parity.assert_same(lambda jax, jnp: jax.jit(lambda x: x[::2] * x[-1] + x[1:, None])(V))


def test_jit_of_jit_and_jit_inside_loops():
    def run(jax, jnp):
        step = jax.jit(lambda x: x - 0.1 * jnp.sin(x))
        x = V
        for _ in range(5):
            x = step(x)
        return x, jax.jit(jax.jit(step))(x)

    parity.assert_same(run)


def test_lowered_code_is_python_that_calls_numpy():
    def f(x, y):
        return mjnp.sin(x) * y - mjnp.exp(x) / y

    text = minijax.jit(f).lower(V, W).as_text()
    assert isinstance(text, str) and text.startswith("def ")
    assert "np.sin(" in text and "np.multiply(" in text
    code = compile(text, "<lowered>", "exec")  # valid Python source
    namespace = {"np": np}
    exec(code, namespace)  # every equation here is a single NumPy call
    (compiled,) = [v for k, v in namespace.items() if k not in ("np", "__builtins__")]
    (value,) = compiled(V, W)
    np.testing.assert_allclose(value, np.asarray(minijax.jit(f)(V, W)), rtol=1e-6)


def test_lowered_code_of_a_derivative_compiles():
    g = minijax.jit(minijax.grad(lambda x: mjnp.sum(mjnp.where(x > 0, x * x, 0.0))))
    text = g.lower(V).as_text()
    assert "np." in text
    compile(text, "<lowered>", "exec")


def test_lower_exists_in_both():
    parity.assert_same(lambda jax, jnp: type(jax.jit(jnp.sin).lower(V).as_text()).__name__)


# ---------------------------------------------------------------------------
# A long jaxpr is compiled as a chain of pieces (jit.split_into_pieces).

jit_module = importlib.import_module("minijax.pjit")


def test_a_long_function_is_compiled_in_pieces_and_agrees_with_jax():
    f = op_chain(700)  # 1,050 equations: the scalars are broadcast to V's shape
    text = minijax.jit(f).lower(V).as_text()
    assert text.count("impl.jit(") == 2
    parity.assert_same(lambda jax, jnp: jax.jit(op_chain(700, jnp))(V))
    parity.assert_same(lambda jax, jnp: jax.jit(jax.grad(
        lambda x: jnp.sum(op_chain(700, jnp)(x))))(V))


def several_outputs(jnp):
    def f(x, y):
        a = jnp.sin(x)
        unused = jnp.cos(y) * 3.0  # noqa: F841  (left out of the code)
        b = a * y
        c = jnp.exp(-b) + a      # a is read again, pieces later
        return c, x, 2.0, (b, jnp.sum(c * a))
    return f


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("make", [several_outputs, lambda jnp: op_chain(9, jnp)],
                         ids=["several_outputs", "chain"])
def test_pieces_of_any_size_compute_the_same(monkeypatch, size, make):
    f = make(mjnp)
    args = (V, W) if make is several_outputs else (V,)
    expected = f(*args)
    monkeypatch.setattr(jit_module, "MAX_EQUATIONS_PER_FUNCTION", size)
    got = minijax.jit(f)(*args)
    assert "impl.jit(" in minijax.jit(f).lower(*args).as_text()
    for a, b in zip(minijax.tree_util.tree_leaves(got), minijax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_linearizing_jit_drops_dead_code_first():
    """An unused custom_vjp call inside jit leaves nothing to differentiate: the
    split of jit's jaxpr removes it (and the residuals only it read), as JAX's does."""
    def run(jax, jnp):
        @jax.custom_vjp
        def h(a):
            return jnp.sin(a)
        h.defvjp(lambda a: (h(a), a), lambda a, g: (jnp.cos(a) * g,))

        def f(x):
            h(x)
            jnp.cos(x)
            return x * 2.0

        g = lambda x: jax.linearize(jax.jit(f), x)[1](x)
        jaxpr = jax.make_jaxpr(g)(1.0)
        return (jax.linearize(g, 0.5)[1](0.3), jax.grad(g)(0.5),
                len(jaxpr.eqns), [len(e.params["jaxpr"].eqns) for e in jaxpr.eqns])
    parity.assert_same(run)


def test_a_jitted_function_of_no_arguments_under_vmap():
    parity.assert_same(lambda jax, jnp: jax.vmap(
        lambda x: jax.jit(lambda: jnp.float32(1.))() + x)(jnp.ones(3)))
