"""Wrong answers to the exercise of "Using custom_vjp"."""

import minijax.numpy as jnp
from minijax import custom_vjp, vjp


def sign_without_rule(x):
    """No rule: the derivative of sign is 0, so every gradient is 0."""
    return jnp.sign(x)


@custom_vjp
def sign_ste_everywhere(x):
    return jnp.sign(x)


# Passes the cotangent through for every x, also outside [-1, 1].
sign_ste_everywhere.defvjp(lambda x: (sign_ste_everywhere(x), None),
                           lambda _, g: (g,))


@custom_vjp
def sign_ste_ignoring_cotangent(x):
    return jnp.sign(x)


# Returns the 0/1 mask itself, the derivative of clip, without multiplying by g.
sign_ste_ignoring_cotangent.defvjp(
    lambda x: (sign_ste_ignoring_cotangent(x), x),
    lambda x, g: (jnp.where(jnp.abs(x) <= 1., 1., 0.),))


@custom_vjp
def sign_ste_by_clip(x):
    return jnp.sign(x)


def _clip_bwd(x, g):
    _, clip_vjp = vjp(lambda x: jnp.clip(x, -1., 1.), x)
    return clip_vjp(g)


# Borrows clip's VJP from autodiff: at x = -1 and x = 1 the max and min in clip
# tie, and their VJP splits the cotangent in half there.
sign_ste_by_clip.defvjp(lambda x: (sign_ste_by_clip(x), x), _clip_bwd)

MISTAKES = {
    "check_sign_ste": [sign_without_rule, sign_ste_everywhere, sign_ste_ignoring_cotangent,
                       sign_ste_by_clip],
}
