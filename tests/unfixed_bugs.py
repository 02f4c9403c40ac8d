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


def dead_custom_vjp_in_jit(m) -> bool:
    return ("custom_vjp" in m.source and "jit" in m.source and m.real.error is None
            and type(m.mini.error).__name__ in ("NotImplementedError", "UnexpectedTracerError"))


UNFIXED_BUGS = [
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
