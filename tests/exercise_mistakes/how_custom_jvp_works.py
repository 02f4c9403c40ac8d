"""Wrong answers to the exercises of "How custom_jvp works"."""

import minijax.numpy as jnp
from minijax import custom_jvp


def sigmoid_without_rule(x):
    """No rule: autodiff of the formula gives -0 * inf = nan at x = -100."""
    return 1. / (1. + jnp.exp(-x))


def _sigmoid_with_rule(coefficient):
    """The sigmoid, with a rule whose output tangent is ``coefficient(x) * t``."""
    @custom_jvp
    def sigmoid(x):
        return 1. / (1. + jnp.exp(-x))

    @sigmoid.defjvp
    def sigmoid_jvp(primals, tangents):
        x, = primals
        t, = tangents
        return sigmoid(x), coefficient(x) * t

    return sigmoid


# The derivative written out in exponentials overflows at the first order already.
sigmoid_formula_rule = _sigmoid_with_rule(lambda x: jnp.exp(-x) / (1. + jnp.exp(-x)) ** 2)


def _copied_coefficient(x):
    """Right at the first order, but s copies the body instead of calling the function:
    an outer grad differentiates the copy with autodiff, and the second derivative is nan."""
    s = 1. / (1. + jnp.exp(-x))
    return s * (1. - s)


sigmoid_copied_rule = _sigmoid_with_rule(_copied_coefficient)

MISTAKES = {
    "check_sigmoid": [sigmoid_without_rule, sigmoid_formula_rule, sigmoid_copied_rule],
}
