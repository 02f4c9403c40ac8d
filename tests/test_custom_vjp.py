"""custom_vjp on minijax beside JAX: values, call order, errors."""
from collections import namedtuple
from functools import partial

import numpy as np
import pytest

from parity import ParityError, assert_same


def _g_with_logging(jax, jnp):
    @jax.custom_vjp
    def g(x):
        print("called g!")
        return jnp.sin(x)

    def g_fwd(x):
        print("called g_fwd!")
        return g(x), jnp.cos(x)

    def g_bwd(cos_x, y_bar):
        print("called g_bwd!")
        return (cos_x * y_bar,)

    g.defvjp(g_fwd, g_bwd)
    return g


def _vjp_then_pull_back(jax, g):
    y, g_vjp = jax.vjp(g, 3.)
    print("vjp returned")
    return y, g_vjp(1.)


TRANSFORMS = {
    "eval": lambda jax, g: g(3.),
    "grad": lambda jax, g: jax.grad(g)(3.),
    "vjp": _vjp_then_pull_back,
    "jit": lambda jax, g: jax.jit(g)(3.),
    "vmap": lambda jax, g: jax.vmap(g)(jax.numpy.arange(3.)),
    "jit_grad": lambda jax, g: jax.jit(jax.grad(g))(3.),
    "grad_jit": lambda jax, g: jax.grad(jax.jit(g))(3.),
    "vmap_grad": lambda jax, g: jax.vmap(jax.grad(g))(jax.numpy.arange(3.)),
    "grad_vmap": lambda jax, g: jax.grad(lambda x: jax.numpy.sum(jax.vmap(g)(x)))(
        jax.numpy.arange(3.)),
    "grad_grad": lambda jax, g: jax.grad(jax.grad(g))(3.),
    "vmap_grad_jit": lambda jax, g: jax.vmap(jax.grad(jax.jit(g)))(jax.numpy.arange(3.)),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_calls_and_values_match_jax(name):
    assert_same(lambda jax, jnp: TRANSFORMS[name](jax, _g_with_logging(jax, jnp)))


FORWARD_MODE = {
    "jvp": lambda jax, g: jax.jvp(g, (3.,), (1.,)),
    "jit_of_jvp": lambda jax, g: jax.jit(lambda x: jax.jvp(g, (x,), (1.,)))(3.),
    "vmap_of_jvp": lambda jax, g: jax.vmap(lambda x: jax.jvp(g, (x,), (1.,)))(
        jax.numpy.arange(3.)),
}


@pytest.mark.parametrize("name", FORWARD_MODE)
def test_forward_mode_raises_type_error(name):
    def run(jax, jnp):
        try:
            FORWARD_MODE[name](jax, _g_with_logging(jax, jnp))
        except TypeError as e:
            print(type(e).__name__, e)
    assert_same(run)


def _clip_gradient(jax, jnp):
    @jax.custom_vjp
    def clip_gradient(lo, hi, x):
        return x

    def clip_gradient_fwd(lo, hi, x):
        return x, (lo, hi)

    def clip_gradient_bwd(res, g):
        lo, hi = res
        return (None, None, jnp.clip(g, lo, hi))

    clip_gradient.defvjp(clip_gradient_fwd, clip_gradient_bwd)
    return clip_gradient


def test_gradient_clipping():
    def run(jax, jnp):
        clip_gradient = _clip_gradient(jax, jnp)
        t = jnp.linspace(0, 10, 10)
        clip_sin = lambda x: jnp.sin(clip_gradient(-0.75, 0.75, x))  # noqa: E731
        return jax.vmap(jax.grad(jnp.sin))(t), jax.vmap(jax.grad(clip_sin))(t)
    assert_same(run)


def test_a_wrong_backward_rule_fails_the_check():
    def run(jax, jnp):
        @jax.custom_vjp
        def f(x):
            return jnp.sin(x)
        factor = 2. if jax.__name__ == "minijax" else 1.  # minijax's rule is wrong
        f.defvjp(lambda x: (f(x), jnp.cos(x)), lambda c, g: (factor * c * g,))
        return jax.grad(f)(1.)
    with pytest.raises(ParityError):
        assert_same(run)


def test_multiple_arguments_pytrees_and_nondiff_argnums():
    def run(jax, jnp):
        @jax.custom_vjp
        def f(x, y):
            return jnp.sin(x) * y
        f.defvjp(lambda x, y: (f(x, y), (jnp.cos(x), jnp.sin(x), y)),
                 lambda res, g: (res[0] * g * res[2], res[1] * g))

        Point = namedtuple("Point", ["x", "y"])

        @jax.custom_vjp
        def fp(pt):
            return {"a": pt.x ** 2, "b": (jnp.sin(pt.x), jnp.cos(pt.y))}

        def fp_bwd(pt, g):
            x_bar = 2 * pt.x * g["a"] + jnp.cos(pt.x) * g["b"][0]
            return (Point(x_bar, -jnp.sin(pt.y) * g["b"][1]),)
        fp.defvjp(lambda pt: (fp(pt), pt), fp_bwd)

        @partial(jax.custom_vjp, nondiff_argnums=(0,))
        def app(f, x):
            return f(x)
        app.defvjp(lambda f, x: (app(f, x), x), lambda f, x, g: (5 * g,))

        total = lambda pt: fp(pt)["a"] + fp(pt)["b"][0]  # noqa: E731
        return (jax.grad(f)(2., 3.), jax.grad(f, (0, 1))(2., 3.),
                jax.grad(total)(Point(1., 2.)), app(lambda x: x ** 2, 4.),
                jax.grad(app, 1)(lambda x: x ** 3, 3.))
    assert_same(run)


BAD_BWD = {
    "not a tuple": lambda r, g: g,
    "too long": lambda r, g: (g, g),
    "a list": lambda r, g: [g],
    "None": lambda r, g: (None,),
    "wrong shape": lambda r, g: (np.ones(2, np.float32),),
}


@pytest.mark.parametrize("name", BAD_BWD)
def test_backward_rule_outputs(name):
    def run(jax, jnp):
        @jax.custom_vjp
        def h(x):
            return jnp.sin(x)
        h.defvjp(lambda x: (h(x), x), BAD_BWD[name])
        return jax.grad(h)(1.)
    assert_same(run)


def test_tracer_in_nondiff_argnums_and_missing_rule():
    def tracer(jax, jnp):
        @partial(jax.custom_vjp, nondiff_argnums=(0,))
        def app2(x, y):
            return x * y
        app2.defvjp(lambda x, y: (app2(x, y), None), lambda x, r, g: (g,))
        return jax.grad(app2)(1., 2.)

    def no_rule(jax, jnp):
        return jax.custom_vjp(lambda x: x)(1.)
    assert_same(tracer)
    assert_same(no_rule)
