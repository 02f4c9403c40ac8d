"""Timing, memory and profiling helpers shared by the measures.

The machine the benchmarks run on may be busy, so a single timing means little.
Every figure here is a median of several runs, and when two libraries are
compared their runs alternate (minijax, the other, minijax, ...), so that a
burst of load elsewhere slows both rather than one of them.
"""
from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import time
import tracemalloc
from typing import Callable

# A run of a workload lasts at least this long, so the clock's resolution and
# the loop's own cost do not count.
MIN_RUN_SECONDS = 0.05
REPEATS = 7


def calls_per_run(fn: Callable[[], object], min_seconds: float = MIN_RUN_SECONDS) -> int:
    """How many calls of ``fn`` take about ``min_seconds`` (fn is called at least once)."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or number >= 1_000_000:
            return number
        # Aim a little past the target so the loop ends after one or two rounds.
        number = max(number * 2, int(number * 1.2 * min_seconds / max(elapsed, 1e-9)))


def _run(fn: Callable[[], object], number: int) -> float:
    """Seconds per call over ``number`` calls.  The garbage collector stays on
    (unlike in timeit): reclaiming a library's reference cycles is part of what
    it costs, and with it off, memory that would be freed and given back to the
    system is not, which changes what the next allocation costs."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def compare(fns: dict[str, Callable[[], object]], repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds per call of each function, with their runs interleaved."""
    numbers = {name: calls_per_run(fn) for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_run(fn, numbers[name]))
    return {name: statistics.median(ts) for name, ts in times.items()}


def once(fn: Callable[[], object], repeats: int = REPEATS, setup: Callable[[], object] | None = None
         ) -> float:
    """Median seconds of single calls of ``fn``, each after a fresh ``setup()``
    (for work that happens once per object, like tracing and compiling)."""
    times = []
    for _ in range(repeats):
        arg = setup() if setup is not None else None
        gc.collect()
        start = time.perf_counter()
        fn(arg) if setup is not None else fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated by Python (and NumPy, which reports to tracemalloc)
    while ``fn`` runs, above what was allocated before."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def profile(fn: Callable[[], object], seconds: float = 0.5, lines: int = 18) -> str:
    """The functions ``fn`` spends its time in, heaviest first (cProfile, own time)."""
    number = calls_per_run(fn, seconds)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(number):
        fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(lines)
    text = out.getvalue()
    # Keep the table, drop pstats' preamble (date, totals are repeated below).
    start = text.find("   ncalls")
    return f"{number} calls profiled\n{text[start:] if start >= 0 else text}".rstrip()


def fmt_time(seconds: float) -> str:
    """A duration with a unit that keeps three significant figures readable."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_bytes(n: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"
