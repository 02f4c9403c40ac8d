"""Wrong answers to the exercise of "Implicit differentiation of fixed points"."""

import minijax.numpy as jnp
from minijax import custom_vjp
from minijax.lax import while_loop


def solve(M, e):
    """E with M = E - e sin E, by the fixed-point iteration E <- M + e sin E."""
    def cond_fun(carry):
        E_prev, E = carry
        return jnp.abs(E - E_prev) > 1e-6

    def body_fun(carry):
        _, E = carry
        return E, M + e * jnp.sin(E)

    _, E = while_loop(cond_fun, body_fun, (M, M + e * jnp.sin(M)))
    return E


def kepler_without_rule(M, e):
    """No rule: grad meets the while loop, which reverse mode cannot go through."""
    return solve(M, e)


def _fwd(M, e):
    E = solve(M, e)
    return E, (e, E)


def _right_bwd(res, E_bar):
    e, E = res
    w = E_bar / (1 - e * jnp.cos(E))
    return w, w * jnp.sin(E)


def _explicit_part_only_bwd(res, E_bar):
    e, E = res
    return E_bar, E_bar * jnp.sin(E)


@custom_vjp
def kepler_explicit_part_only(M, e):
    return solve(M, e)


# Returns the derivatives of f = M + e sin E with respect to M and e, and forgets the
# factor 1 / (1 - e cos E) that accounts for E depending on them too.
kepler_explicit_part_only.defvjp(_fwd, _explicit_part_only_bwd)


@custom_vjp
def kepler_fwd_runs_the_loop(M, e):
    return solve(M, e)


# First derivatives are right, but fwd runs the loop instead of calling the function:
# a second derivative differentiates fwd and meets the loop in reverse mode.
kepler_fwd_runs_the_loop.defvjp(_fwd, _right_bwd)

MISTAKES = {
    "check_kepler": [kepler_without_rule, kepler_explicit_part_only, kepler_fwd_runs_the_loop],
}
