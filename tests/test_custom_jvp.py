"""custom_jvp on minijax beside JAX: values, side-effect order, errors."""
from functools import partial

import pytest

from parity import ParityError, assert_same


def _f_with_logging(jax, jnp):
    """The tutorial's f with a custom rule, logging each call of f and of the rule."""
    @jax.custom_jvp
    def f(x):
        print("called f!")
        return jnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        print("called f_jvp!")
        x, = primals
        x_dot, = tangents
        return f(x), jnp.cos(x) * x_dot

    return f


TRANSFORMS = {
    "eval": lambda jax, f: f(3.),
    "jit": lambda jax, f: jax.jit(f)(3.),
    "vmap": lambda jax, f: jax.vmap(f)(jax.numpy.arange(3.)),
    "jvp": lambda jax, f: jax.jvp(f, (3.,), (1.,)),
    "grad": lambda jax, f: jax.grad(f)(3.),
    "grad_grad": lambda jax, f: jax.grad(jax.grad(f))(3.),
    "grad_jit": lambda jax, f: jax.grad(jax.jit(f))(3.),
    "jit_grad": lambda jax, f: jax.jit(jax.grad(f))(3.),
    "vmap_grad_jit": lambda jax, f: jax.vmap(jax.grad(jax.jit(f)))(jax.numpy.arange(3.)),
    "jvp_vmap": lambda jax, f: jax.jvp(jax.vmap(f), (jax.numpy.arange(3.),),
                                       (jax.numpy.ones(3),)),
    "vmap_jvp": lambda jax, f: jax.vmap(lambda x: jax.jvp(f, (x,), (1.,)))(
        jax.numpy.arange(3.)),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_calls_and_values_match_jax(name):
    def run(jax, jnp):
        return TRANSFORMS[name](jax, _f_with_logging(jax, jnp))
    assert_same(run)


def test_numerically_stable_log1pexp():
    def run(jax, jnp):
        @jax.custom_jvp
        def log1pexp(x):
            return jnp.log(1. + jnp.exp(x))

        @log1pexp.defjvp
        def log1pexp_jvp(primals, tangents):
            x, = primals
            x_dot, = tangents
            return log1pexp(x), x_dot * (1 - 1 / (1 + jnp.exp(x)))

        return (jax.grad(log1pexp)(100.), jax.jit(jax.grad(log1pexp))(3.),
                jax.vmap(jax.jit(jax.grad(log1pexp)))(jnp.arange(3.)))
    assert_same(run)


def test_a_wrong_rule_fails_the_check():
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x)
        # minijax gets a wrong rule (the derivative of cos), JAX the right one.
        slope = jnp.sin if jax.__name__ == "minijax" else jnp.cos
        f.defjvp(lambda p, t: (f(p[0]), slope(p[0]) * t[0]))
        return jax.grad(f)(1.)
    with pytest.raises(ParityError):
        assert_same(run)


def test_defjvps_keyword_arguments_and_control_flow():
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x, y):
            return jnp.sin(x) * y
        f.defjvps(lambda x_dot, out, x, y: jnp.cos(x) * x_dot * y,
                  lambda y_dot, out, x, y: jnp.sin(x) * y_dot)

        @jax.custom_jvp
        def g(x, y=2., z=3.):
            return x * y * z
        g.defjvp(lambda p, t: (g(*p), t[0] * p[1] * p[2] * 10.))

        @jax.custom_jvp
        def h(x):
            return jnp.sin(x) if x > 0 else jnp.cos(x)

        @h.defjvp
        def h_jvp(primals, tangents):
            x, = primals
            return h(x), (2. if x > 0 else 3.) * tangents[0]

        return (jax.grad(f)(2., 3.), jax.grad(f, 1)(2., 3.), g(1., z=5.),
                jax.grad(g)(1., z=5.), jax.grad(h)(1.), jax.grad(h)(-1.))
    assert_same(run)


def test_nondiff_argnums_and_pytrees():
    def run(jax, jnp):
        @partial(jax.custom_jvp, nondiff_argnums=(0,))
        def app(f, x):
            return f(x)
        app.defjvp(lambda f, primals, tangents: (f(primals[0]), 2. * tangents[0]))

        @jax.custom_jvp
        def fd(d):
            return {"a": d["x"] ** 2, "b": (jnp.sin(d["x"]), jnp.cos(d["y"]))}

        @fd.defjvp
        def fd_jvp(primals, tangents):
            d, = primals
            t, = tangents
            return fd(d), {"a": 2 * d["x"] * t["x"],
                           "b": (jnp.cos(d["x"]) * t["x"], -jnp.sin(d["y"]) * t["y"])}

        total = lambda d: fd(d)["a"] + fd(d)["b"][0]  # noqa: E731
        return (app(lambda x: x ** 3, 3.), jax.grad(app, 1)(lambda x: x ** 3, 3.),
                jax.grad(total)({"x": 1., "y": 2.}))
    assert_same(run)


RULES_THAT_FAIL = {
    "not a pair": lambda f: lambda p, t: 1.0,
    "structures differ": lambda f: lambda p, t: ((f(p[0]),), f(p[0])),
    "tangent shape": lambda f: lambda p, t: (f(p[0]), p[0] * jax_ones(2)),
}


def jax_ones(n):
    import numpy as np
    return np.ones(n, np.float32)


@pytest.mark.parametrize("name", RULES_THAT_FAIL)
def test_bad_rules_raise_jax_exception_types(name):
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x)
        f.defjvp(RULES_THAT_FAIL[name](f))
        return jax.jvp(f, (1.,), (1.,))
    assert_same(run)


def test_missing_rule_and_nonlinear_rule_errors():
    def no_rule(jax, jnp):
        return jax.custom_jvp(lambda x: x)(1.)

    def nonlinear(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x)
        f.defjvp(lambda p, t: (f(p[0]), jnp.sin(t[0])))
        return jax.grad(f)(1.)
    assert_same(no_rule)
    assert_same(nonlinear)
