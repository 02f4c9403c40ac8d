"""Wrong answers to the exercises of "custom_jvp in a nutshell"."""

import minijax.numpy as jnp
from minijax import custom_jvp


def logaddexp_naive(x, y):
    """No rule and no shift: exp(1000) overflows."""
    return jnp.log(jnp.exp(x) + jnp.exp(y))


@custom_jvp
def logaddexp_swapped(x, y):
    m = jnp.maximum(x, y)
    return m + jnp.log(jnp.exp(x - m) + jnp.exp(y - m))


# Each argument's tangent is weighted by the other argument's softmax weight.
logaddexp_swapped.defjvps(lambda x_dot, out, x, y: jnp.exp(y - out) * x_dot,
                          lambda y_dot, out, x, y: jnp.exp(x - out) * y_dot)


@custom_jvp
def logaddexp_overflowing_rule(x, y):
    m = jnp.maximum(x, y)
    return m + jnp.log(jnp.exp(x - m) + jnp.exp(y - m))


# Right in exact arithmetic, but exp(1000) / exp(1000) is inf / inf in float32.
logaddexp_overflowing_rule.defjvps(
    lambda x_dot, out, x, y: jnp.exp(x) / (jnp.exp(x) + jnp.exp(y)) * x_dot,
    lambda y_dot, out, x, y: jnp.exp(y) / (jnp.exp(x) + jnp.exp(y)) * y_dot)

MISTAKES = {
    "check_logaddexp": [logaddexp_naive, logaddexp_swapped, logaddexp_overflowing_rule],
}
