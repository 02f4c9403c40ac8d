"""Wrong answers to the exercises of "Conventions at a boundary"."""

import minijax.numpy as jnp
from minijax import custom_jvp


def safe_norm_no_rule(x):
    """No rule: the gradient at the zero vector is inf * 0 = nan."""
    return jnp.sqrt(jnp.sum(x * x))


def safe_norm_epsilon(x):
    """The epsilon trick: the value at zero is 1e-6, the gradient at (3, 4) * 1e-7 short."""
    return jnp.sqrt(jnp.sum(x * x) + 1e-12)


# The two answers below have the plain norm as their body, and a rule.
safe_norm_guarded_tangent = custom_jvp(safe_norm_no_rule)
safe_norm_python_if = custom_jvp(safe_norm_no_rule)


@safe_norm_guarded_tangent.defjvp
def safe_norm_guarded_tangent_jvp(primals, tangents):
    # The where comes after the division by zero: jvp gives 0 at the zero vector, but
    # reverse mode sends the cotangent through the discarded branch, 0 / 0 = nan.
    (x,), (x_dot,) = primals, tangents
    ans = safe_norm_guarded_tangent(x)
    return ans, jnp.where(ans == 0, 0., jnp.sum(x * x_dot) / ans)


@safe_norm_python_if.defjvp
def safe_norm_python_if_jvp(primals, tangents):
    # Right when evaluated eagerly, but a Python if on a traced value fails under jit
    # and vmap.
    (x,), (x_dot,) = primals, tangents
    ans = safe_norm_python_if(x)
    return ans, jnp.zeros_like(ans) if ans == 0 else jnp.sum(x * x_dot) / ans


MISTAKES = {
    "check_safe_norm": [safe_norm_no_rule, safe_norm_epsilon, safe_norm_guarded_tangent,
                        safe_norm_python_if],
}
