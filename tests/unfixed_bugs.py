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


def dead_custom_jvp_closure_in_jit(m) -> bool:
    return ("custom_jvp" in m.source and "jit" in m.source and m.real.error is None
            and type(m.mini.error).__name__ == "UnexpectedTracerError")


UNFIXED_BUGS: list[Entry] = [
    Entry(
        "dead_custom_jvp_closure_in_jit",
        "An unused custom_jvp call inside jit, closing over a differentiated value",
        "Inside a jitted function, a `custom_jvp` function whose rule closes over a value "
        "computed from a differentiated input, and whose result is not used: under `jvp` "
        "minijax differentiates the whole jaxpr, runs the rule, and the rule's closed-over "
        "value has escaped its trace (`UnexpectedTracerError`). JAX returns the result; "
        "when the result is used, JAX fails too (the difference `closure_under_jit`).",
        dead_custom_jvp_closure_in_jit,
        "def f(x, y):\n"
        "    c = jnp.mean(y)\n"
        "    @jax.custom_jvp\n"
        "    def g(a):\n"
        "        return jnp.sin(a) * c\n"
        "    g.defjvp(lambda p, t: (g(p[0]), jnp.cos(p[0]) * c * t[0]))\n"
        "    g(y)\n"
        "    return jnp.sin(y)\n"
        "def program(x, y):\n"
        "    return jax.jvp(lambda y: jax.jit(f)(x, y), (y,), (jnp.ones_like(y),))",
        np.array(0.0, np.float32), np.array(0.0, np.float32)),
]
