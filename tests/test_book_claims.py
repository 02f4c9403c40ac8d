"""Claims the chapters make about JAX 0.10.2, checked on JAX itself.

Most of what a chapter says about JAX is checked cell by cell by the parity
extension. These are the sentences whose evidence is not a compared cell: JAX
raising an exception minijax raises differently, or a function minijax does not have.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def sin_with_rule(tangent_out):
    @jax.custom_jvp
    def f(x):
        return jnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), tangent_out(x, t)

    return f


def test_an_affine_rule_fails_nowhere_and_jvp_and_grad_disagree():
    # "Using custom_jvp": an affine rule does not fail; jvp and grad silently disagree.
    f = sin_with_rule(lambda x, t: jnp.cos(x) * t + 1.)
    _, tangent = jax.jvp(f, (3.,), (1.,))
    gradient = jax.grad(f)(3.)
    assert np.isclose(tangent, np.cos(3.) + 1.) and np.isclose(gradient, np.cos(3.))


def test_a_rule_squaring_its_tangent_has_no_transpose_rule():
    f = sin_with_rule(lambda x, t: jnp.cos(x) * t ** 2)
    jax.jvp(f, (3.,), (1.,))  # works under jvp
    with pytest.raises(NotImplementedError, match="integer_pow"):
        jax.grad(f)(3.)


def test_a_rule_multiplying_two_tangents_fails_with_an_assertion_error():
    f = sin_with_rule(lambda x, t: jnp.cos(x) * t * t)
    jax.jvp(f, (3.,), (1.,))
    with pytest.raises(AssertionError):
        jax.grad(f)(3.)


def test_grad_linearizes_with_linearize_tracers():
    # "Using custom_jvp": JAX 0.10.2 builds grad on a linearize trace.
    seen = []
    jax.grad(lambda x: (seen.append(type(x).__name__), x * 2.)[1])(3.)
    assert seen == ["LinearizeTracer"]


def counted_sin(fwd_calls_f: bool):
    calls = []

    @jax.custom_vjp
    def h(x):
        return jnp.sin(x)

    def h_fwd(x):
        return (h(x) if fwd_calls_f else jnp.sin(x)), jnp.cos(x)

    def h_bwd(cos_x, g):
        calls.append("bwd")
        return (cos_x * g,)

    h.defvjp(h_fwd, h_bwd)
    return h, calls


@pytest.mark.parametrize("fwd_calls_f", [True, False])
def test_grad_of_grad_runs_the_backward_rule_once(fwd_calls_f):
    # "Pitfalls": bwd runs once; the outer grad differentiates the rules' code.
    h, calls = counted_sin(fwd_calls_f)
    assert np.isclose(jax.grad(jax.grad(h))(1.), -np.sin(1.))
    assert calls == ["bwd"]


def jvp_of_jvp(fun, x):
    return jax.jvp(lambda x: jax.jvp(fun, (x,), (1.,))[1], (x,), (1.,))


def test_jvp_of_jvp_of_custom_vjp():
    # "Using custom_vjp": TypeError when fwd calls f, NotImplementedError otherwise.
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jvp_of_jvp(counted_sin(True)[0], 3.)
    with pytest.raises(NotImplementedError, match="custom_lin"):
        jvp_of_jvp(counted_sin(False)[0], 3.)


def fixed_point(f, a, x0):
    """The implicit fixed point of "Implicit differentiation", with closures converted."""
    @jax.custom_vjp
    def solve(a):
        return jax.lax.while_loop(lambda x: jnp.abs(f(a, x) - x) > 1e-6,
                                  lambda x: f(a, x), x0)

    def solve_fwd(a):
        x = solve(a)
        return x, (a, x)

    def solve_bwd(res, x_bar):
        a, x = res
        _, vjp_a = jax.vjp(lambda a: f(a, x), a)
        df_dx = jax.grad(lambda x: f(a, x))(x)
        return vjp_a(x_bar / (1. - df_dx))

    solve.defvjp(solve_fwd, solve_bwd)
    return solve(a)


def test_closure_convert_turns_closed_over_values_into_arguments():
    # "Implicit differentiation": jax.closure_convert does the conversion.
    def sqrt_of(c):
        def step(a, x):  # closes over c, a value being differentiated
            return 0.5 * (x + a * c / x)
        converted, consts = jax.closure_convert(step, 1., 1.)
        assert len(consts) == 1
        return fixed_point(lambda a, x: converted(a[0], x, *a[1:]), (1., *consts), 1.)

    assert np.isclose(jax.grad(sqrt_of)(4.), 0.25, atol=1e-5)


def test_custom_root_differentiates_a_root_implicitly():
    def sqrt_by_root(a):
        return jax.lax.custom_root(
            lambda x: x * x - a, 1.,
            lambda g, x0: jax.lax.while_loop(lambda x: jnp.abs(g(x)) > 1e-6,
                                             lambda x: x - g(x) / (2. * x), x0),
            lambda g, y: y / (2. * jnp.sqrt(a)))

    assert np.isclose(sqrt_by_root(4.), 2.) and np.isclose(jax.grad(sqrt_by_root)(4.), 0.25)


def test_a_backward_rule_returning_a_bare_cotangent_is_a_type_error():
    # "Debugging the backward pass": the tutorial's `return g` fails on JAX 0.10.2.
    @jax.custom_vjp
    def debug(x):
        return x

    debug.defvjp(lambda x: (x, x), lambda x, g: g)
    with pytest.raises(TypeError, match="tuple"):
        jax.grad(lambda x: jnp.sin(debug(x ** 2)))(3.)


def test_jax_flushes_the_subnormal_window_of_the_composed_log1pexp_gradient():
    # "Numerical stability": between about 87.34 and 88.72, 1 / (1 + e^x) is subnormal;
    # JAX on CPU flushes it to 0, so the composed gradient is 0 there (NumPy keeps it,
    # and minijax's is about 1), and nan past the overflow; a stable rule gives 1.
    window = jnp.array([87., 87.5, 88., 88.5, 89.])
    composed = jax.vmap(jax.grad(lambda x: jnp.log(1. + jnp.exp(x))))(window)
    np.testing.assert_array_equal(composed, [1., 0., 0., 0., np.nan])
    with np.errstate(over="ignore"):
        in_numpy = 1 / (1 + np.exp(np.asarray(window)))
    assert np.all(in_numpy[1:4] > 0) and np.all(in_numpy[1:4] < np.finfo(np.float32).tiny)
