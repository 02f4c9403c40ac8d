"""Wrong answers to the exercises of "Using custom_jvp"."""

import minijax.numpy as jnp
from minijax import custom_jvp


def sinc_no_rule(x):
    """No rule: sinc''(0) comes out 0, and near 0 the slopes have few correct digits."""
    x_or_1 = jnp.where(x == 0, 1., x)
    return jnp.where(x == 0, 1., jnp.sin(x_or_1) / x_or_1)


# The answers below have the body above, and a rule.
sinc_guarded_quotient = custom_jvp(sinc_no_rule)
sinc_taylor_one_where = custom_jvp(sinc_no_rule)
sinc_python_if = custom_jvp(sinc_no_rule)

# The slope at 0 is right, but near 0 the quotient has few correct digits, and at 0
# the outer grad differentiates the 0 / 0 in the branch that is not taken (nan).
sinc_guarded_quotient.defjvps(
    lambda t, ans, x: jnp.where(x == 0, 0., (jnp.cos(x) - ans) / x) * t)

# Accurate first derivatives, but the quotient still sees x = 0 in the branch that is
# not taken: the outer grad differentiates it there, so sinc''(0) is nan.
sinc_taylor_one_where.defjvps(
    lambda t, ans, x: jnp.where(jnp.abs(x) < 0.1, -x / 3 + x ** 3 / 30,
                                (jnp.cos(x) - ans) / x) * t)


@sinc_python_if.defjvp
def sinc_python_if_jvp(primals, tangents):
    # Right eagerly, but the Python if on a traced value fails under jit and vmap.
    (x,), (t,) = primals, tangents
    ans = sinc_python_if(x)
    return ans, (0. if x == 0 else (jnp.cos(x) - ans) / x) * t


MISTAKES = {
    "check_sinc": [sinc_no_rule, sinc_guarded_quotient, sinc_taylor_one_where,
                   sinc_python_if],
}
