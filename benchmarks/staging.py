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

import minijax
import minijax.numpy as mjnp

LENGTHS = (1_000, 10_000)
REPEATS = 5


def op_chain(length: int):
    """A fresh function of ``length`` primitives (fresh, so jit has not seen it)."""
    steps = [mjnp.sin, lambda x: x * 0.5, mjnp.cos, lambda x: x + 1.0]

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


def generated_source(length: int) -> str:
    """The source jit generates for a chain of ``length`` ops, for timing CPython's
    own compile() of it apart from minijax's work."""
    return minijax.jit(op_chain(length)).lower(mjnp.zeros(3)).as_text()


def main() -> None:
    names = ("make_jaxpr", "jit", "compile")
    times: dict[str, list[float]] = {f"{name} {n}": [] for name in names for n in LENGTHS}
    sources = {n: generated_source(n) for n in LENGTHS}
    for _ in range(REPEATS):  # the lengths alternate, so load elsewhere hits both
        for key in times:
            name, n = key.split()
            gc.collect()
            start = time.perf_counter()
            if name == "compile":
                compile(sources[int(n)], "<generated>", "exec")
            else:
                work(name, int(n))
            times[key].append(time.perf_counter() - start)
    print(json.dumps({key: statistics.median(ts) for key, ts in times.items()}))


if __name__ == "__main__":
    main()
