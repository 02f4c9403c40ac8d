"""``python -m benchmarks [numbers...]``: run the measures, print the table."""
from __future__ import annotations

import argparse
import os
import platform
import sys

from benchmarks.measures import MEASURES, WOULD_TAKE, Row


def machine() -> str:
    """What the figures depend on: cores, CPU, versions, and how busy the machine was."""
    import autograd  # noqa: F401  (its version is read from package metadata)
    import jax
    import numpy as np
    from importlib.metadata import version

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas_vars = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                 if k in os.environ}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({cpu}); Python {platform.python_version()}, "
            f"NumPy {np.__version__}, JAX {jax.__version__}, autograd {version('autograd')}; "
            f"load average {load}; OpenBLAS variables: {blas_vars or 'none set'}")


def table(rows: list[Row]) -> str:
    header = ["#", "measure", "minijax", "compared with", "ratio", "target", "met"]
    cells = [[str(r.number), r.measure, r.minijax, r.other,
              "" if r.ratio is None else f"{r.ratio:.3g}×", r.target,
              {True: "yes", False: "NO", None: ""}[r.met]] for r in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
             for line in [header, ["-" * w for w in widths], *cells]]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("numbers", nargs="*", type=int,
                        help=f"measures to run, among {sorted(MEASURES)} (default: all)")
    args = parser.parse_args(argv)
    if not set(args.numbers) <= set(MEASURES):
        parser.error(f"no measure numbered {sorted(set(args.numbers) - set(MEASURES))}")
    print(machine(), flush=True)
    rows: list[Row] = []
    for number in args.numbers or sorted(MEASURES):
        print(f"measure {number}: {MEASURES[number].__name__}...", flush=True)
        rows += MEASURES[number]()
    print()
    print(table(rows))
    profiled = set()  # rows of one measure share their profile: print it once
    for r in rows:
        if r.met is False and id(r.why) not in profiled:
            profiled.add(id(r.why))
            print(f"\n# {r.number} missed its target ({r.measure}: {r.ratio:.3g}×, "
                  f"{r.target}); where minijax spends its time:")
            print(r.why() if r.why else "(no profile)")
            print(f"What meeting it would take: "
                  f"{WOULD_TAKE.get(r.number, 'see the README, The missed targets')}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
