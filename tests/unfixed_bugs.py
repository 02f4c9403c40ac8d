"""Bugs of minijax that the fuzzer found and that are not fixed yet.

These are not differences minijax makes on purpose (those are in differences.py):
each is a place where minijax gives a wrong answer or a wrong error, to be fixed.
Until it is, the seeded fuzz test skips the programs an entry recognises and prints
how many it skipped. tests/test_fuzz.py runs each entry's example: once a bug is
fixed, that test fails, so the entry is removed and the list cannot go stale.
"""

from __future__ import annotations

import numpy as np

from differences import Entry


def fori_loop_primal(m) -> bool:
    return ("fori_loop" in m.source and m.mini.error is None and bool(m.problems)
            and all("minijax gives a numpy array, JAX a array" in p for p in m.problems))


def dead_custom_vjp_in_jit(m) -> bool:
    return ("custom_vjp" in m.source and "jit" in m.source and m.real.error is None
            and type(m.mini.error).__name__ in ("NotImplementedError", "UnexpectedTracerError"))


UNFIXED_BUGS = [
    Entry(
        "fori_loop_primal",
        "A loop of no iterations hands back a NumPy primal",
        "Under `jvp`, `fori_loop(0, 0, body, x)` with Python bounds returns the primal of "
        "a NumPy `x` unchanged, a NumPy array, where JAX's loop, a `scan` primitive even "
        "with no iterations, returns an `Array`. minijax unrolls such loops in Python; "
        "making `fori_loop` a `scan` fixes it.",
        fori_loop_primal,
        "def program(x, y):\n"
        "    f = lambda x: jax.lax.fori_loop(0, 0, lambda i, a: jnp.sin(a), x)\n"
        "    return jax.jvp(f, (x,), (jnp.ones_like(x),))",
        np.array(0.0, np.float32), np.array(0.0, np.float32)),
    Entry(
        "dead_custom_vjp_in_jit",
        "An unused custom_vjp call inside jit, differentiated twice",
        "A `custom_vjp` call whose result a jitted function does not use stays in the "
        "function's jaxpr, and minijax differentiates it with the rest: under two "
        "linearizations its `custom_lin` meets a JVP (`NotImplementedError`), and a "
        "backward rule closing over a traced value leaks it. JAX removes the dead call "
        "inside the `jit` first and returns the result.",
        dead_custom_vjp_in_jit,
        "def program(x, y):\n"
        "    @jax.custom_vjp\n"
        "    def h(a):\n"
        "        return jnp.sin(a)\n"
        "    h.defvjp(lambda a: (h(a), a), lambda a, g: (jnp.cos(a) * g,))\n"
        "    def f(x):\n"
        "        h(x)\n"
        "        return x * 2.0\n"
        "    g = lambda x: jax.linearize(jax.jit(f), x)[1](x)\n"
        "    return jax.linearize(g, x)[1](x)",
        np.array(0.5, np.float32), np.array(0.3, np.float32)),
]
