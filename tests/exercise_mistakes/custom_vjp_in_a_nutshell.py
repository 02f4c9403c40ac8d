"""Wrong answers to the exercises of "custom_vjp in a nutshell"."""

import minijax.numpy as jnp
from minijax import custom_vjp


def _fwd(softmax):
    def softmax_fwd(x):
        y = softmax(x)
        return y, y
    return softmax_fwd


@custom_vjp
def softmax_unshifted(x):
    """The maximum is not subtracted: e^1000 overflows and the output is nan."""
    e = jnp.exp(x)
    return e / jnp.sum(e)


softmax_unshifted.defvjp(_fwd(softmax_unshifted),
                         lambda y, y_bar: (y * (y_bar - jnp.dot(y, y_bar)),))


@custom_vjp
def softmax_diagonal(x):
    e = jnp.exp(x - jnp.max(x))
    return e / jnp.sum(e)


# Treats softmax as elementwise: the term -y (y . y_bar), from the shared sum, is missing.
softmax_diagonal.defvjp(_fwd(softmax_diagonal), lambda y, y_bar: (y * y_bar,))


@custom_vjp
def softmax_bare_cotangent(x):
    e = jnp.exp(x - jnp.max(x))
    return e / jnp.sum(e)


# Returns the cotangent itself rather than a tuple of one: a TypeError under vjp.
softmax_bare_cotangent.defvjp(_fwd(softmax_bare_cotangent),
                              lambda y, y_bar: y * (y_bar - jnp.dot(y, y_bar)))

MISTAKES = {
    "check_softmax": [softmax_unshifted, softmax_diagonal, softmax_bare_cotangent],
}
