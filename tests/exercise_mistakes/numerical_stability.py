"""Wrong answers to the exercises of "Numerical stability"."""

import minijax.numpy as jnp
from minijax import custom_jvp


@custom_jvp
def log_sigmoid_naive_body(x):
    """A stable rule, but the naive body: the value at -100 is log(0) = -inf."""
    return jnp.log(1 / (1 + jnp.exp(-x)))


log_sigmoid_naive_body.defjvps(lambda t, ans, x: t / (1 + jnp.exp(x)))


def log_sigmoid_no_rule(x):
    """A stable body and no rule: autodiff through max and abs at 0 gives slope 1, not 1/2."""
    return -(jnp.maximum(-x, 0.) + jnp.log1p(jnp.exp(-jnp.abs(x))))


@custom_jvp
def log_sigmoid_cancelling_rule(x):
    return -(jnp.maximum(-x, 0.) + jnp.log1p(jnp.exp(-jnp.abs(x))))


# 1 - sigma(x) is right in exact arithmetic, but at x = 30 it is 1 - 1 = 0 in float32.
log_sigmoid_cancelling_rule.defjvps(lambda t, ans, x: (1 - 1 / (1 + jnp.exp(-x))) * t)


@custom_jvp
def log_sigmoid_overflowing_rule(x):
    return -(jnp.maximum(-x, 0.) + jnp.log1p(jnp.exp(-jnp.abs(x))))


# e^-x / (1 + e^-x) is inf / inf = nan at x = -100.
log_sigmoid_overflowing_rule.defjvps(lambda t, ans, x: jnp.exp(-x) / (1 + jnp.exp(-x)) * t)

MISTAKES = {
    "check_log_sigmoid": [log_sigmoid_naive_body, log_sigmoid_no_rule,
                          log_sigmoid_cancelling_rule, log_sigmoid_overflowing_rule],
}
