"""The eight measures of README.md's Performance section, each a function returning
rows of the table.

A row holds one comparison: minijax's figure, what it is compared with, the
ratio and its target.  A row whose target is missed carries a ``why``: a
function that profiles the minijax workload, printed under the table.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

# JAX on a machine with an NVIDIA device but a CPU-only jaxlib warns; use the CPU.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import autograd  # noqa: E402
import autograd.numpy as anp  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jjnp  # noqa: E402
import numpy as np  # noqa: E402

import minijax  # noqa: E402
import minijax.numpy as mjnp  # noqa: E402
from minijax.pjit import compile_jaxpr  # noqa: E402
from benchmarks.timing import (  # noqa: E402
    compare, fmt_bytes, fmt_time, once, peak_memory, profile)

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    number: int
    measure: str
    minijax: str
    other: str            # what minijax is compared with, and its figure
    ratio: float | None   # minijax's figure over the other's
    target: str           # e.g. "≤ 1.3×"
    met: bool | None      # None: shown for information, no target
    why: Callable[[], str] | None = None  # the profile shown when the target is missed


def _row(number, measure, mine, other, ratio, limit=None, at_least=False, why=None) -> Row:
    if limit is None:
        return Row(number, measure, mine, other, ratio, "", None)
    met = ratio >= limit if at_least else ratio <= limit
    target = f"{'≥' if at_least else '≤'} {limit:g}×"
    return Row(number, measure, mine, other, ratio, target, met, None if met else why)


# What meeting a target would take, printed under its profile when it is missed
# (the README's "The missed targets" says more).
WOULD_TAKE = {
    1: "fewer Python calls per primitive (tangent rules already send primal operations "
       "straight to the parent trace); past that, dispatch written in C",
    2: "calls outside any transformation already skip bind (pjit's ready path); past "
       "that, a dispatch path written in C, as jax.jit has",
    4: "long jaxprs are already compiled in pieces (pjit.split_into_pieces) because "
       "CPython's compile() grows faster than a function's length; beyond that, smaller "
       "pieces, or fewer objects allocated per traced equation",
}


# ---------------------------------------------------------------------------
# 1. Eager grad of a tiny function: the cost of tracing and transposing.


def log1pexp_minijax(x):
    return mjnp.log(1. + mjnp.exp(x))


def log1pexp_jax(x):
    return jjnp.log(1. + jjnp.exp(x))


def log1pexp_autograd(x):
    return anp.log(1. + anp.exp(x))


def eager_grad() -> list[Row]:
    mine = minijax.grad(log1pexp_minijax)
    theirs = jax.grad(log1pexp_jax)
    hips = autograd.grad(log1pexp_autograd)
    assert np.isclose(float(mine(3.)), float(theirs(3.))) and np.isclose(float(mine(3.)), hips(3.))
    t = compare({"minijax": lambda: mine(3.),
                 "jax": lambda: theirs(3.).block_until_ready(),
                 "autograd": lambda: hips(3.)})
    why = partial(profile, lambda: mine(3.))
    what = "eager grad(log1pexp)(3.), per call"
    return [
        _row(1, what, fmt_time(t["minijax"]), f"JAX eager {fmt_time(t['jax'])}",
             t["minijax"] / t["jax"], 0.1, why=why),
        _row(1, what, fmt_time(t["minijax"]), f"autograd {fmt_time(t['autograd'])}",
             t["minijax"] / t["autograd"], 2, why=why),
    ]


# ---------------------------------------------------------------------------
# 2. Calling a jitted scalar function: what dispatch costs beyond the NumPy calls.


def scalar_chain(np_like):
    """Eleven elementwise operations on a scalar, written once for each library."""
    def f(x):
        y = np_like.sin(x) * 2.0
        y = np_like.cos(y) + x
        y = np_like.exp(-y) * y
        y = np_like.tanh(y) - 0.5
        return np_like.log1p(y * y)
    return f


def jit_call() -> list[Row]:
    mine = minijax.jit(scalar_chain(mjnp))
    theirs = jax.jit(scalar_chain(jjnp))
    plain = scalar_chain(np)
    x_mine, x_jax, x_np = mjnp.float32(0.5), jjnp.float32(0.5), np.asarray(0.5, np.float32)
    expected = plain(x_np)
    assert np.isclose(float(mine(x_mine)), expected) and np.isclose(float(theirs(x_jax)), expected)
    t = compare({"minijax": lambda: mine(x_mine),
                 "jax": lambda: theirs(x_jax).block_until_ready(),
                 "numpy": lambda: plain(x_np)})
    what = "jitted scalar function of 11 ops, per call"
    return [
        _row(2, what, fmt_time(t["minijax"]), f"jax.jit {fmt_time(t['jax'])}",
             t["minijax"] / t["jax"], 1, why=partial(profile, lambda: mine(x_mine))),
        _row(2, what, fmt_time(t["minijax"]), f"plain NumPy {fmt_time(t['numpy'])}",
             t["minijax"] / t["numpy"]),
    ]


# ---------------------------------------------------------------------------
# 3. jit(grad) of an elementwise chain on a million float32 values.

N_ELEMENTS = 10**6


def elementwise_chain(np_like):
    def f(x):
        return np_like.sin(x) * np_like.exp(-0.5 * x * x) + np_like.tanh(2.0 * x)
    return f


def elementwise_grad_floor(x):
    """The gradient of sum(f(x)) written by hand in NumPy, forward then backward:
    the least work any implementation has to do, with the same operations."""
    s, c = np.sin(x), np.cos(x)
    e = np.exp(np.float32(-0.5) * x * x)
    t = np.tanh(np.float32(2.0) * x)
    # d/dx sin(x) e(x) = cos(x) e - x sin(x) e;  d/dx tanh(2x) = 2 (1 - tanh(2x)^2)
    return (c - x * s) * e + np.float32(2.0) * (np.float32(1.0) - t * t)


def jit_grad_big() -> list[Row]:
    x_np = np.linspace(-3, 3, N_ELEMENTS, dtype=np.float32)
    x_mine, x_jax = mjnp.asarray(x_np), jjnp.asarray(x_np)
    mine = minijax.jit(minijax.grad(lambda x: mjnp.sum(elementwise_chain(mjnp)(x))))
    theirs = jax.jit(jax.grad(lambda x: jjnp.sum(elementwise_chain(jjnp)(x))))
    hips = autograd.grad(lambda x: anp.sum(elementwise_chain(anp)(x)))
    expected = elementwise_grad_floor(x_np)
    for result in (mine(x_mine), theirs(x_jax), hips(x_np)):
        assert np.asarray(result).dtype == np.float32
        assert np.allclose(np.asarray(result), expected, atol=1e-5)
    t = compare({"minijax": lambda: mine(x_mine),
                 "floor": lambda: elementwise_grad_floor(x_np),
                 "autograd": lambda: hips(x_np),
                 "jax": lambda: theirs(x_jax).block_until_ready()})
    what = "jit(grad(sum∘f)) on 10^6 float32, f of 8 elementwise ops"
    why = partial(profile, lambda: mine(x_mine), 2.0)
    return [
        _row(3, what, fmt_time(t["minijax"]), f"hand-written NumPy {fmt_time(t['floor'])}",
             t["minijax"] / t["floor"], 1.3, why=why),
        _row(3, what, fmt_time(t["minijax"]), f"autograd {fmt_time(t['autograd'])}",
             t["minijax"] / t["autograd"], 0.6, why=why),
        _row(3, what, fmt_time(t["minijax"]), f"jax.jit {fmt_time(t['jax'])}",
             t["minijax"] / t["jax"]),
    ]


# ---------------------------------------------------------------------------
# 4. Staging and compiling long chains: the cost must grow linearly.


def staging_scaling() -> list[Row]:
    """Runs benchmarks/staging.py in a process of its own (see its docstring)."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.staging"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    t = json.loads(done.stdout)
    rows = []
    for name, what in [("make_jaxpr", "make_jaxpr"),
                       ("jit", "jit: first call (trace, generate, compile)")]:
        small, large = t[f"{name} 1000"], t[f"{name} 10000"]
        rows.append(_row(4, f"{what}, 10,000 ops", fmt_time(large),
                         f"itself at 1,000 ops {fmt_time(small)}", large / small, 12,
                         why=partial(_profile_staging, name)))
    small, large = t["codegen 1000"], t["codegen 10000"]
    rows.append(_row(4, "of which generating and compiling the code", fmt_time(large),
                     f"at 1,000 ops {fmt_time(small)}", large / small))
    return rows


def _profile_staging(name: str) -> str:
    from benchmarks import staging
    return profile(lambda: staging.work(name, 10_000), 3.0)


# ---------------------------------------------------------------------------
# 5. vmap(grad(f)) over many inputs against a Python loop of grad(f).

N_VMAP = 10**5
N_LOOP = 1_000  # the loop is timed on this many inputs and scaled up


def vmap_grad() -> list[Row]:
    xs = mjnp.asarray(np.linspace(-3, 3, N_VMAP, dtype=np.float32))
    g = minijax.grad(log1pexp_minijax)
    batched = minijax.vmap(g)
    subset = [xs[i] for i in range(N_LOOP)]
    assert np.allclose(np.asarray(batched(xs))[:5], [float(g(x)) for x in subset[:5]])
    t = compare({"vmap": lambda: batched(xs),
                 "loop": lambda: [g(x) for x in subset]}, repeats=5)
    loop = t["loop"] * N_VMAP / N_LOOP
    return [_row(5, "vmap(grad(log1pexp)) over 10^5 inputs", fmt_time(t["vmap"]),
                 f"loop of grad, {N_LOOP:,} timed, ×{N_VMAP // N_LOOP}: {fmt_time(loop)}",
                 loop / t["vmap"], 100, at_least=True,
                 why=partial(profile, lambda: batched(xs)))]


# ---------------------------------------------------------------------------
# 6. Reverse mode through a fixed point: implicit (custom_vjp) against unrolled.


def fixed_point_with_steps(num_steps: int):
    """The tutorial's implicit fixed_point, iterating exactly ``num_steps`` times
    (a counter in the while_loop's carry) instead of to a tolerance, so that
    the number of iterations is what varies."""
    def iterate(f, a, x):
        def body(carry):
            i, x = carry
            return i + 1, f(a, x)
        return minijax.lax.while_loop(lambda carry: carry[0] < num_steps, body, (0, x))[1]

    @partial(minijax.custom_vjp, nondiff_argnums=(0,))
    def fixed_point(f, a, x_guess):
        return iterate(f, a, x_guess)

    def fixed_point_fwd(f, a, x_guess):
        x_star = fixed_point(f, a, x_guess)
        return x_star, (a, x_star)

    def fixed_point_bwd(f, res, x_star_bar):
        a, x_star = res
        _, vjp_a = minijax.vjp(lambda a: f(a, x_star), a)
        _, vjp_x = minijax.vjp(lambda x: f(a, x), x_star)
        w = iterate(lambda _, u: x_star_bar + vjp_x(u)[0], None, x_star_bar)
        return vjp_a(w)[0], mjnp.zeros_like(x_star)

    fixed_point.defvjp(fixed_point_fwd, fixed_point_bwd)
    return lambda a: fixed_point(lambda a, x: 0.5 * (x + a / x), a, a)


def unrolled_sqrt(num_steps: int):
    def sqrt(a):
        x = a
        for _ in range(num_steps):
            x = 0.5 * (x + a / x)
        return x
    return sqrt


def scan_sqrt(num_steps: int):
    """The same iteration as a fori_loop with static bounds: a scan, which reverse mode
    differentiates by storing the residuals of every iteration."""
    def sqrt(a):
        return minijax.lax.fori_loop(0, num_steps, lambda i, x: 0.5 * (x + a / x), a)
    return sqrt


def fixed_point_memory() -> list[Row]:
    rows, peaks = [], {}
    for kind, make in [("implicit", fixed_point_with_steps), ("unrolled", unrolled_sqrt),
                       ("scan", scan_sqrt)]:
        for n in (10, 100, 1000):
            g = minijax.grad(make(n))
            assert np.isclose(float(g(2.)), 0.5 / np.sqrt(2.), rtol=1e-5)  # also warms caches
            peaks[kind, n] = peak_memory(lambda: g(2.))
    for n in (100, 1000):
        rows.append(_row(
            6, f"grad of fixed_point, implicit (custom_vjp): peak memory at {n} steps",
            fmt_bytes(peaks["implicit", n]), f"itself at 10 steps {fmt_bytes(peaks['implicit', 10])}",
            peaks["implicit", n] / peaks["implicit", 10], 1.5))
    for n in (100, 1000):
        rows.append(_row(
            6, f"grad of fixed_point, implicit: peak memory at {n} steps",
            fmt_bytes(peaks["implicit", n]), f"unrolled at {n} steps {fmt_bytes(peaks['unrolled', n])}",
            peaks["implicit", n] / peaks["unrolled", n]))
    for n in (100, 1000):
        rows.append(_row(
            6, f"grad of the same iteration as a scan (fori_loop): peak memory at {n} steps",
            fmt_bytes(peaks["scan", n]), f"itself at 10 steps {fmt_bytes(peaks['scan', 10])}",
            peaks["scan", n] / peaks["scan", 10]))
    return rows


# ---------------------------------------------------------------------------
# 7. The test command: every test, and every chapter under nbval.

TEST_BUDGET_SECONDS = 300


def test_suite() -> list[Row]:
    """Runs the test command once.  Per chapter, the time nbval spent on its cells
    (pytest's --durations, summed over the notebook's cells: kernel start and
    the run of the chapter on minijax and on JAX)."""
    print("  running `bash scripts/test.sh --durations=0` (a few minutes)...", flush=True)
    start = time.perf_counter()
    done = subprocess.run(["bash", "scripts/test.sh", "--durations=0", "-q"], cwd=ROOT,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1].strip("= ") if done.stdout.strip() else ""
    per_file: dict[str, float] = defaultdict(float)  # setup + call + teardown of its tests
    for seconds, nodeid in re.findall(r"^([\d.]+)s \w+ +(\S+)", done.stdout, re.M):
        per_file[nodeid.split("::")[0]] += float(seconds)
    chapters = {f: s for f, s in per_file.items() if f.endswith(".ipynb")}
    slowest = sorted(per_file.items(), key=lambda fs: -fs[1])

    def why() -> str:
        return "slowest files (seconds, summed over their tests):\n" + "\n".join(
            f"{s:8.1f}  {f}" for f, s in slowest[:12])

    outcome = "" if done.returncode == 0 else " (FAILED)"
    rows = [_row(7, f"whole test command (bash scripts/test.sh), wall time{outcome}",
                 fmt_time(wall), f"budget 5 min; pytest: {summary}", wall / TEST_BUDGET_SECONDS,
                 1, why=why)]
    for f, s in sorted(chapters.items(), key=lambda fs: -fs[1]):
        rows.append(_row(7, f"nbval: {Path(f).stem}", fmt_time(s), "", None))
    tests = sum(s for f, s in per_file.items() if not f.endswith(".ipynb"))
    rows.append(_row(7, "tests/ (summed over both workers)", fmt_time(tests), "", None))
    return rows


# ---------------------------------------------------------------------------
# 8. A loop is one scan: staging it costs the same for any number of iterations.

LOOP_STEPS = 10_000


def decay_loop(lib, np_like, num_steps: int):
    """A fresh fori_loop of ``num_steps`` iterations (fresh, so nothing is cached)."""
    def body(i, v):
        return v * 0.9 + np_like.sin(v)
    return lambda x: lib.lax.fori_loop(0, num_steps, body, x)


def _stage_and_generate(num_steps: int) -> None:
    """make_jaxpr of the loop, then the code of its jaxpr and of the scan's body."""
    closed = minijax.make_jaxpr(decay_loop(minijax, mjnp, num_steps))(1.)
    compile_jaxpr(closed.jaxpr)
    for eqn in closed.jaxpr.eqns:
        compile_jaxpr(eqn.params["jaxpr"], "scan_body")


def scan_loops() -> list[Row]:
    small, large = once(lambda: _stage_and_generate(10)), once(lambda: _stage_and_generate(
        LOOP_STEPS))
    mine = minijax.grad(decay_loop(minijax, mjnp, LOOP_STEPS))
    theirs = jax.grad(decay_loop(jax, jjnp, LOOP_STEPS))
    assert np.isclose(float(mine(1.)), float(theirs(1.)), atol=1e-6)
    t = compare({"minijax": lambda: mine(1.),
                 "jax": lambda: theirs(1.).block_until_ready()})
    first_mine = once(lambda: minijax.jit(decay_loop(minijax, mjnp, LOOP_STEPS))(1.))
    first_jax = once(lambda: jax.jit(decay_loop(jax, jjnp, LOOP_STEPS))(1.).block_until_ready())
    return [
        _row(8, f"make_jaxpr and code generation of fori_loop, {LOOP_STEPS:,} iterations",
             fmt_time(large), f"itself at 10 iterations {fmt_time(small)}", large / small, 1.5,
             why=partial(profile, lambda: _stage_and_generate(LOOP_STEPS))),
        _row(8, f"eager grad through fori_loop, {LOOP_STEPS:,} iterations",
             fmt_time(t["minijax"]), f"JAX eager {fmt_time(t['jax'])}",
             t["minijax"] / t["jax"], 3, why=partial(profile, lambda: mine(1.))),
        _row(8, f"first call of jit(fori_loop), {LOOP_STEPS:,} iterations (running them too)",
             fmt_time(first_mine), f"JAX {fmt_time(first_jax)}", first_mine / first_jax),
    ]


MEASURES: dict[int, Callable[[], list[Row]]] = {
    1: eager_grad, 2: jit_call, 3: jit_grad_big, 4: staging_scaling, 5: vmap_grad,
    6: fixed_point_memory, 7: test_suite, 8: scan_loops,
}
