"""Custom rules and control flow under every stack of transformations, against JAX.

test_transformations.py stacks transformations over a function of primitives only.
Here the function also calls a custom_jvp function, a custom_vjp function, lax.cond
and lax.fori_loop, so each stack also exercises the rules' processing by every trace:
JVP, partial evaluation and transposition, batching, and staging. Where JAX refuses
a stack (forward mode through custom_vjp), minijax must refuse it with the same
exception type.
"""

from __future__ import annotations

import itertools

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
