"""Wrong answers to the exercise of "Testing a custom rule"."""

import numpy as np

import minijax.numpy as jnp
from minijax import custom_vjp


def rotated(theta, v):
    c, s = jnp.cos(theta), jnp.sin(theta)
    return jnp.stack([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _fwd(rotate):
    def fwd(theta, v):
        y = rotate(theta, v)
        return y, (theta, y)
    return fwd


@custom_vjp
def rotate_unfixed(theta, v):
    """The rule as given: v's cotangent is rotated by theta instead of -theta."""
    return rotated(theta, v)


rotate_unfixed.defvjp(_fwd(rotate_unfixed), lambda res, y_bar: (
    y_bar[1] * res[1][0] - y_bar[0] * res[1][1], rotated(res[0], y_bar)))


@custom_vjp
def rotate_all_negated(theta, v):
    """Transposes v's part by rotating by -theta, and wrongly flips theta's sign too."""
    return rotated(theta, v)


rotate_all_negated.defvjp(_fwd(rotate_all_negated), lambda res, y_bar: (
    y_bar[0] * res[1][1] - y_bar[1] * res[1][0], rotated(-res[0], y_bar)))


def rotate_without_rule(theta, v):
    """Right derivatives, but from autodiff: the custom rule was deleted, not fixed."""
    return rotated(theta, v)


MISTAKES = {
    # Where sin(theta) is 0 the rotation is symmetric, and the mistake hides.
    "check_counterexample": [(0., [1., 2.]), (np.pi, [1., 2.])],
    "check_rotate": [rotate_unfixed, rotate_all_negated, rotate_without_rule],
}
