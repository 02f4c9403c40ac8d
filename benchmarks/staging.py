"""Measure 4 on its own: staging and compiling long chains of operations.

It runs in a process of its own that imports only minijax (``python -m
benchmarks.staging`` prints its figures as JSON).  Tracing allocates many
objects, and each full collection of Python's garbage collector visits every
object in the process: in the benchmark's main process that includes all of
JAX, whose size would then be billed to minijax's tracing.
"""
from __future__ import annotations

import gc
import json
import statistics
import time

import numpy as np

import minijax
import minijax.numpy as mjnp
from minijax.pjit import compile_jaxpr

LENGTHS = (1_000, 10_000)
REPEATS = 5


def op_chain(length: int, np_like=mjnp):
    """A fresh function of ``length`` primitives (fresh, so jit has not seen it)."""
    steps = [np_like.sin, lambda x: x * 0.5, np_like.cos, lambda x: x + 1.0]

    def chain(x):
        for i in range(length):
            x = steps[i % 4](x)
        return x
    return chain


def work(name: str, length: int) -> None:
    x = mjnp.zeros(3)
    if name == "make_jaxpr":
        minijax.make_jaxpr(op_chain(length))(x)
    else:  # the first call of a jitted function: trace, generate the code, compile it
        minijax.jit(op_chain(length))(x)


def staged(length: int):
    """A fresh jaxpr of the chain (not compiled yet) and an argument for it."""
    closed = minijax.make_jaxpr(op_chain(length))(mjnp.zeros(3))
    return closed.jaxpr, np.zeros(3, np.float32)


def main() -> None:
    names = ("make_jaxpr", "jit", "codegen")
    times: dict[str, list[float]] = {f"{name} {n}": [] for name in names for n in LENGTHS}
    for _ in range(REPEATS):  # the lengths alternate, so load elsewhere hits both
        for key in times:
            name, n = key.split()
            if name == "codegen":  # generating the source, compiling it, running it
                jaxpr, x = staged(int(n))
            gc.collect()
            start = time.perf_counter()
            if name == "codegen":
                compile_jaxpr(jaxpr)(x)
            else:
                work(name, int(n))
            times[key].append(time.perf_counter() - start)
            jaxpr = None  # kept, its objects would slow the collector in later runs
    print(json.dumps({key: statistics.median(ts) for key, ts in times.items()}))


if __name__ == "__main__":
    main()
