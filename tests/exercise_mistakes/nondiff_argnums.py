"""Wrong answers to the exercise of "Non-differentiable arguments"."""

from functools import partial

import minijax.numpy as jnp
from minijax import custom_vjp


def trapezoid(f, n, a, b):
    h = (b - a) / n
    y = f(a + h * jnp.arange(n + 1))
    return h * (jnp.sum(y) - (y[0] + y[-1]) / 2)


def integrate_without_rule(f, n, a, b):
    """No rule: autodiff differentiates the four-interval approximation, 2.750 for e."""
    return trapezoid(f, n, a, b)


@partial(custom_vjp, nondiff_argnums=(0, 1))
def integrate_lower_bound_positive(f, n, a, b):
    return trapezoid(f, n, a, b)


# Forgets that raising the lower bound shrinks the integral: +f(a) instead of -f(a).
integrate_lower_bound_positive.defvjp(
    lambda f, n, a, b: (integrate_lower_bound_positive(f, n, a, b), (a, b)),
    lambda f, n, res, g: (f(res[0]) * g, f(res[1]) * g))


@partial(custom_vjp, nondiff_argnums=(0, 1))
def integrate_ignoring_cotangent(f, n, a, b):
    return trapezoid(f, n, a, b)


# Returns the derivatives themselves, not multiplied by the cotangent g.
integrate_ignoring_cotangent.defvjp(
    lambda f, n, a, b: (integrate_ignoring_cotangent(f, n, a, b), (a, b)),
    lambda f, n, res, g: (-f(res[0]), f(res[1])))

MISTAKES = {
    "check_integrate": [integrate_without_rule, integrate_lower_bound_positive,
                        integrate_ignoring_cotangent],
}
