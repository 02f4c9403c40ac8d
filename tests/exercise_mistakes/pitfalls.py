"""Wrong answers to the exercise of "Pitfalls"."""

import minijax.numpy as jnp
from minijax import custom_jvp, custom_vjp
from minijax.lax import while_loop


def newton_cube_root(a):
    step = lambda x: (2 * x + a / x ** 2) / 3

    def cond_fun(carry):
        x_prev, x = carry
        return jnp.abs(x - x_prev) > 1e-6 * jnp.abs(x)

    def body_fun(carry):
        _, x = carry
        return x, step(x)

    _, x = while_loop(cond_fun, body_fun, (a, step(a)))
    return x


def cube_root_without_rule(a):
    """No rule: forward mode goes through the loop, reverse mode cannot."""
    return newton_cube_root(a)


@custom_vjp
def cube_root_as_given(a):
    """The custom_vjp version of the statement: forward mode cannot apply to it."""
    return newton_cube_root(a)


cube_root_as_given.defvjp(lambda a: (cube_root_as_given(a), cube_root_as_given(a)),
                          lambda x, x_bar: (x_bar / (3 * x ** 2),))


@custom_vjp
def cube_root_fwd_without_call(a):
    """Still custom_vjp, with a fwd that runs the loop instead of calling the function:
    jvp of grad then works, but jvp itself still cannot apply."""
    return newton_cube_root(a)


def _fwd_without_call(a):
    x = newton_cube_root(a)
    return x, x


cube_root_fwd_without_call.defvjp(_fwd_without_call, lambda x, x_bar: (x_bar / (3 * x ** 2),))


@custom_jvp
def cube_root_rule_runs_the_loop(a):
    return newton_cube_root(a)


@cube_root_rule_runs_the_loop.defjvp
def _rule_runs_the_loop(primals, tangents):
    # Gets x from the loop instead of calling the function: grad of grad
    # differentiates the rule and meets the loop in reverse mode.
    a, = primals
    a_dot, = tangents
    x = newton_cube_root(a)
    return x, a_dot / (3 * x ** 2)


MISTAKES = {
    "check_cube_root": [cube_root_without_rule, cube_root_as_given, cube_root_fwd_without_call,
                        cube_root_rule_runs_the_loop],
}
