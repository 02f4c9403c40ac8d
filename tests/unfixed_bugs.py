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
]
