"""What the chapters "Tracing and forward mode" and "Jaxprs and jit" rely on, beside JAX.

Each test runs on minijax and on JAX through parity.assert_same, which compares what
the function prints, returns and raises. Known differences from JAX are marked
xfail(strict=True) with the reason, so a fix shows up as an unexpected pass.
"""

from __future__ import annotations

import jax.numpy
import numpy as np
import pytest

import minijax.numpy
from parity import assert_same


def test_weak_types_of_python_scalars():
    def weak_types(jax, jnp):
        for value in (jnp.sin(1.0), jnp.float32(2.0) * 3, jnp.arange(3) * 2.5,
                      jnp.array([1.0, 2.0]) * 2, jnp.array([1, 2]) + 1):
            print(repr(value), repr(value.aval))
    assert_same(weak_types)


def test_nested_jvp_keeps_perturbations_apart():
    def nested(jax, jnp):
        def derivative(f):
            return lambda x: jax.jvp(f, (x,), (1.0,))[1]
        return (derivative(lambda x: x * derivative(lambda y: x + y)(1.0))(3.0),
                derivative(lambda x: derivative(lambda y: x * y)(2.0))(3.0),
                derivative(derivative(derivative(jnp.sin)))(1.0))
    assert_same(nested)


def test_python_control_flow_on_the_primal_under_jvp():
    def control_flow(jax, jnp):
        def f(x):
            while x < 10.0:
                x = x * 2.0
            return jnp.sin(x) if x > 11.0 else jnp.cos(x)
        return jax.jvp(f, (1.5,), (1.0,)), jax.jvp(f, (2.5,), (1.0,))
    assert_same(control_flow)


def test_jit_traces_once_per_signature_and_jvp_does_not_retrace():
    def signatures(jax, jnp):
        def f(x):
            print("called f!")
            return jnp.sin(x) * 2.0
        f_jit = jax.jit(f)
        inputs = [1.0, 2.0, jnp.float32(2.0), 2, jnp.ones(3), jnp.zeros(3)]
        results = [f_jit(x) for x in inputs]
        return results, jax.jvp(f_jit, (3.0,), (1.0,)), jax.jvp(f_jit, (jnp.ones(3),),
                                                                (jnp.ones(3),))
    assert_same(signatures)


def test_static_argnums_is_part_of_the_cache_key():
    def static(jax, jnp):
        def f(x, n):
            print("tracing with n =", n)
            for _ in range(n):
                x = jnp.sin(x)
            return x
        f_jit = jax.jit(f, static_argnums=1)
        return [f_jit(1.0, 2), f_jit(2.0, 2), f_jit(1.0, 3)]
    assert_same(static)


@pytest.mark.parametrize("control", ["if", "while", "float"])
def test_python_control_flow_on_a_traced_value_fails_under_jit(control):
    def under_jit(jax, jnp):
        def f(x):
            if control == "if":
                return x if x > 0 else -x
            if control == "while":
                while x < 10.0:
                    x = x * 2.0
                return x
            return jnp.sin(float(x))
        try:
            jax.jit(f)(1.0)
        except Exception as e:
            print(type(e).__name__)
    assert_same(under_jit)


def test_jnp_where_instead_of_if():
    def where(jax, jnp):
        f = jax.jit(lambda x: jnp.where(x > 0, jnp.sin(x), jnp.cos(x)))
        return f(1.0), f(-1.0), jax.jvp(f, (-1.0,), (1.0,))
    assert_same(where)


@pytest.mark.parametrize("transform", ["jit", "jvp", "make_jaxpr"])
def test_a_leaked_tracer_is_an_error(transform):
    def leak(jax, jnp):
        saved = []

        def f(x):
            saved.append(jnp.sin(x))
            return x * 2.0
        if transform == "jvp":
            jax.jvp(f, (1.0,), (1.0,))
        else:
            getattr(jax, transform)(f)(1.0)
        try:
            saved[0] + 1.0
        except Exception as e:
            print(type(e).__name__)
    assert_same(leak)


JAXPRS = {  # name: jnp -> (function, arguments)
    "sin_times_2": lambda jnp: (lambda x: jnp.sin(x) * 2.0, (3.0,)),
    "constant_staged": lambda jnp: (lambda x: jnp.sin(2.0) * x, (3.0,)),
    "two_args": lambda jnp: (lambda x, y: jnp.sin(x) * y + 1.0, (3.0, 4.0)),
    "log1pexp": lambda jnp: (lambda x: jnp.log(1.0 + jnp.exp(x)), (3.0,)),
    "int": lambda jnp: (lambda n: n * 2, (3,)),
    "constvar": lambda jnp: (lambda x: x * jnp.array([1.0, 2.0, 3.0]), (jnp.ones(3),)),
}


@pytest.mark.parametrize("name", JAXPRS)
def test_jaxprs_print_as_in_jax(name):
    def printed(jax, jnp):
        fn, args = JAXPRS[name](jnp)
        print(jax.make_jaxpr(fn)(*args))
    assert_same(printed)


def test_staged_jvp_prints_as_in_jax():
    assert_same(lambda jax, jnp: print(
        jax.make_jaxpr(lambda x: jax.jvp(jnp.sin, (x,), (1.0,)))(3.0)))


def test_indexing_stages_only_slice_and_squeeze():
    assert_same(lambda jax, jnp: print(jax.make_jaxpr(lambda x: x[0])(jnp.ones(3))))


def test_jit_of_grad_of_indexing():
    assert_same(lambda jax, jnp: jax.jit(jax.grad(lambda x: x[0]))(jnp.ones(3)))


def test_shaped_array_repr_matches_jax_exactly():
    assert repr(minijax.numpy.ones((2, 3)).aval) == repr(jax.numpy.ones((2, 3)).aval)


# ---------------------------------------------------------------------------
# Inputs go through jvp as given: one returned unchanged is the same object.


def test_jvp_returns_an_unchanged_input_as_given():
    assert_same(lambda jax, jnp: jax.jvp(lambda x: x, (1.0,), (1.0,)))
    assert_same(lambda jax, jnp: jax.jvp(lambda x: (x, x * 2.0), (1.0,), (1.0,)))
    assert_same(lambda jax, jnp: jax.jvp(lambda x: x, (np.ones(2),), (np.ones(2),)))
