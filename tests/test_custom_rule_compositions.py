"""Custom rules and control flow under every stack of transformations, against JAX.

test_transformations.py stacks transformations over a function of primitives only.
Here the function also calls a custom_jvp function, a custom_vjp function, lax.cond
and lax.fori_loop, so each stack also exercises the rules' processing by every trace:
JVP, partial evaluation and transposition, batching, and staging. Where JAX refuses
a stack (forward mode through custom_vjp), minijax must refuse it with the same
exception type. Particular compositions follow: pytrees, nondiff_argnums, closures
and control flow, under vmap with batch axes other than 0.
"""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pytest

import minijax
import minijax.numpy  # noqa: F401  (minijax.numpy, used below)
import parity
from test_transformations import TRANSFORMS, X3, apply_stack


def custom_parts(jax, jnp):
    @jax.custom_jvp
    def softplus(x):
        return jnp.log1p(jnp.exp(-jnp.abs(x))) + jnp.maximum(x, 0.)

    @softplus.defjvp
    def softplus_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t / (1. + jnp.exp(-x))  # calls f, so every order uses the rule

    @jax.custom_vjp
    def scaled_sin(x):
        return 0.5 * jnp.sin(x)

    def scaled_sin_fwd(x):
        return scaled_sin(x), jnp.cos(x)

    def scaled_sin_bwd(cos_x, g):
        return (0.5 * cos_x * g,)

    scaled_sin.defvjp(scaled_sin_fwd, scaled_sin_bwd)
    return softplus, scaled_sin


def base(jax, jnp, x):
    softplus, scaled_sin = custom_parts(jax, jnp)
    y = softplus(x) * jnp.mean(jnp.cos(x))
    y = jax.lax.cond(jnp.sum(x) > 0., lambda v: v * 2., jnp.tanh, y)
    y = jax.lax.fori_loop(0, 2, lambda i, v: v + 0.5 * jnp.sin(v), y)
    return y + scaled_sin(x) * jnp.mean(x ** 2)


def forward_mode(stack) -> bool:
    """Whether the stack holds forward mode, under which custom_vjp is refused."""
    return any(name in ("jvp", "linearize") for name in stack)


def apply_custom_stack(jax, jnp, stack, x):
    return apply_stack(jax, jnp, stack, x, lambda y: base(jax, jnp, y))


STACKS = ([(name,) for name in TRANSFORMS]
          + list(itertools.product(TRANSFORMS, repeat=2))
          + [("grad", "grad", "grad"), ("vmap", "grad", "jit"), ("jit", "vmap", "grad"),
             ("grad", "vmap", "jit"), ("vmap", "vmap", "grad"), ("value_and_grad", "jit", "vmap"),
             ("vjp", "vmap_last", "jit"), ("jit", "grad", "vmap"), ("grad", "vmap_last", "jit")])


@pytest.mark.parametrize("stack", STACKS, ids="-".join)
def test_custom_rules_under_a_stack_of_transformations(stack):
    # Exceptions are compared too: forward mode through custom_vjp is refused by both.
    parity.assert_same(lambda jax, jnp: apply_custom_stack(jax, jnp, stack, X3))
    if not forward_mode(stack):
        assert isinstance(apply_custom_stack(minijax, minijax.numpy, stack, X3), minijax.Array)


# ---------------------------------------------------------------------------
# Particular compositions: pytrees, nondiff_argnums, closures and control flow
# under vmap (with batch axes other than 0), grad and jit.

X23 = np.arange(6, dtype=np.float32).reshape(2, 3) / 5 - 0.4
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def polar_step(jax, jnp):
    """A custom_vjp function of a dict, returning a dict holding a tuple."""
    @jax.custom_vjp
    def f(p):
        return {"s": jnp.sin(p["a"]) * p["b"], "t": (p["a"] * 2.,)}

    def f_bwd(p, g):
        return ({"a": jnp.cos(p["a"]) * p["b"] * g["s"] + 2. * g["t"][0],
                 "b": jnp.sin(p["a"]) * g["s"]},)

    f.defvjp(lambda p: (f(p), p), f_bwd)
    return f


def apply_fn(jax):
    """custom_vjp with a function as its nondiff argument; the cotangent is 3g."""
    @partial(jax.custom_vjp, nondiff_argnums=(0,))
    def apply(h, x):
        return h(x)

    apply.defvjp(lambda h, x: (h(x), x), lambda h, x, g: (g * 3.,))
    return apply


def power(jax):
    """custom_jvp with an int as its nondiff argument."""
    @partial(jax.custom_jvp, nondiff_argnums=(1,))
    def power(x, k):
        return x ** k

    power.defjvp(lambda k, p, t: (power(p[0], k), k * p[0] ** (k - 1) * t[0]))
    return power


@case
def dict_with_axes_per_key_under_grad(jax, jnp):
    f = jax.vmap(polar_step(jax, jnp), in_axes=({"a": 1, "b": None},),
                 out_axes={"s": 0, "t": 1})

    def loss(p):
        return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(f(p)))
    return jax.grad(loss)({"a": jnp.array(X23), "b": jnp.array([0.5, -1.])})


@case
def dict_under_jit_of_vmap_of_grad(jax, jnp):
    f = polar_step(jax, jnp)

    def loss(p):
        return jnp.sum(f(p)["s"]) + jnp.sum(f(p)["t"][0] ** 2)
    return jax.jit(jax.vmap(jax.grad(loss)))({"a": jnp.array(X23), "b": jnp.array([0.5, -1.])})


@case
def function_argument_under_grad_of_vmap_axis_1(jax, jnp):
    apply = apply_fn(jax)
    batched = jax.vmap(lambda v: apply(jnp.sin, v), in_axes=1)
    return jax.grad(lambda x: jnp.sum(batched(x)))(jnp.array(X23))


@case
def int_argument_under_grad_of_vmap_axis_1(jax, jnp):
    cube = jax.vmap(lambda v: power(jax)(v, 3), in_axes=1, out_axes=1)
    return jax.grad(lambda x: jnp.sum(cube(x) ** 2))(jnp.array(X23))


@case
def int_argument_under_vmap_of_grad_of_grad(jax, jnp):
    return jax.vmap(jax.grad(jax.grad(lambda v: power(jax)(v, 3))))(jnp.array(X23[0]))


@case
def rule_closing_over_a_vmap_value(jax, jnp):
    apply = apply_fn(jax)

    def scaled(v, w):
        return apply(lambda z: z * w, v)  # w is a vmap tracer: closing over it is fine
    return jax.vmap(jax.grad(scaled))(jnp.array(X23[0]), jnp.array(X23[1]))


@case
def cond_inside_a_custom_jvp_function(jax, jnp):
    @jax.custom_jvp
    def f(x):
        return jax.lax.cond(x > 0, jnp.sin, jnp.cos, x)

    f.defjvp(lambda p, t: (f(p[0]), jnp.where(p[0] > 0, jnp.cos(p[0]), -jnp.sin(p[0])) * t[0]))
    return (jax.vmap(jax.grad(f))(jnp.array(X23[0])),
            jax.jit(jax.vmap(jax.grad(jax.grad(f))))(jnp.array(X23[1])))


@case
def while_loop_inside_a_custom_vjp_function(jax, jnp):
    @jax.custom_vjp
    def sqrt(a):
        return jax.lax.while_loop(lambda x: jnp.abs(x * x - a) > 1e-5,
                                  lambda x: 0.5 * (x + a / x), a)

    sqrt.defvjp(lambda a: (sqrt(a), sqrt(a)), lambda r, g: (g / (2. * r),))
    return (jax.vmap(jax.grad(sqrt))(jnp.array([1., 2., 9.])),
            jax.grad(lambda a: jnp.sum(jax.vmap(sqrt)(a)))(jnp.array([4., 2.])))


@case
def cond_with_a_batched_predicate_on_axis_1_under_grad(jax, jnp):
    def f(v):
        return jax.lax.cond(jnp.sum(v) > 0, lambda u: jnp.sin(u) * 2., lambda u: u ** 2, v)
    batched = jax.vmap(f, in_axes=1, out_axes=1)
    return jax.grad(lambda x: jnp.sum(batched(x) ** 2))(jnp.array(X23))


@case
def cond_with_an_unbatched_operand_under_grad(jax, jnp):
    def f(p, y):
        return jax.lax.cond(p > 0, lambda u: jnp.sin(u) * p, lambda u: u * 3., y)
    batched = jax.vmap(f, in_axes=(0, None))
    return jax.grad(lambda y: jnp.sum(batched(jnp.array([1., -1., 2.]), y)))(jnp.array([0.5, 0.2]))


@case
def while_loop_on_axis_1(jax, jnp):
    def f(v):
        return jax.lax.while_loop(lambda c: jnp.sum(c) < 10., lambda c: c * 1.5 + 0.1, v)
    return jax.vmap(f, in_axes=1, out_axes=1)(jnp.array(X23) + 1.)


@case
def while_loop_under_vmap_of_jvp(jax, jnp):
    def f(v):
        return jax.lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * v), (0, v))[1]
    return jax.vmap(lambda v: jax.jvp(f, (v,), (1.,)))(jnp.array([0.5, 1.1, -0.9]))


@case
def fori_loop_with_batched_bounds(jax, jnp):
    def f(n, x):
        return jax.lax.fori_loop(0, n, lambda i, c: c * 0.5 + i, x)
    return jax.vmap(f)(jnp.array([1, 3, 5]), jnp.array([1., 2., 3.]))


@case
def cond_on_batched_booleans(jax, jnp):
    def f(p, x):
        return jax.lax.cond(p, jnp.sin, jnp.cos, x)
    return jax.vmap(f)(jnp.array([True, False]), jnp.array([0.3, 0.4]))


@case
def cond_closing_over_a_differentiated_value(jax, jnp):
    def f(x, w):
        return jax.lax.cond(x > 0, lambda u: u * w, lambda u: u / w, x)
    return jax.jit(jax.vmap(jax.grad(f, argnums=(0, 1))))(jnp.array([1., -2.]),
                                                          jnp.array([3., 4.]))


@case
def cond_with_pytree_outputs_under_grad(jax, jnp):
    def f(x):
        a, (b, c) = jax.lax.cond(x > 1, lambda u: (u, (u * 2, u ** 2)),
                                 lambda u: (-u, (u, 1.0 + 0 * u)), x)
        return a + b * c
    return jax.vmap(jax.grad(f))(jnp.array([0.5, 2.0])), jax.grad(jax.grad(f))(2.0)


@pytest.mark.parametrize("name", CASES)
def test_composition(name):
    parity.assert_same(CASES[name])
