"""The differences between minijax and JAX that minijax makes on purpose.

This is data, read in two places:

- the fuzzer (tests/fuzz.py) skips a mismatch that an entry here recognises, and
  fails on any other;
- the page "minijax and JAX" lists the entries (the directive
  ``deliberate-differences-from-jax`` of _ext/book_site.py renders each ``title``
  and ``text``).

An entry belongs here only if minijax differs on purpose, because matching JAX would
take machinery the book chooses not to build. A bug does not belong here: it goes to
tests/unfixed_bugs.py until it is fixed.

Each entry has an example (``source`` defining ``program(x, y)``, with inputs ``x``
and ``y``) on which minijax and JAX differ; tests/test_fuzz.py checks that the
example still differs and that ``matches`` recognises it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Entry:
    """A known mismatch: what it is, how to recognise it, and an example."""

    name: str
    title: str  # a short phrase, the first words of the page's bullet
    text: str  # what differs and why, in a sentence or two (`code` allowed)
    matches: Callable[[Any], bool]  # takes a fuzz.Mismatch
    source: str  # defines program(x, y)
    x: Any = None
    y: Any = None


# ---------------------------------------------------------------------------
# Helpers for the matchers. A Mismatch has .problems (what parity.differences
# reported), .mini and .real (Outcome: .value or .error), .source, .program.inputs
# and .rerun(library, inputs).


def _values_only(m) -> bool:
    """The results have the same structure, shapes and dtypes; only values differ."""
    return (m.mini.error is None and m.real.error is None and bool(m.problems)
            and all(" gives " in p.splitlines()[0] or "values differ" in p
                    for p in m.problems)
            and not any(" gives a " in p or " items" in p for p in m.problems))


def _leaves(value) -> list[np.ndarray]:
    import jax

    return [np.asarray(leaf, np.float64) for leaf in jax.tree_util.tree_leaves(value)]


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.isclose(a, b, rtol=1e-5, atol=1e-6) | (np.isnan(a) & np.isnan(b))


def _perturbed(inputs: list, step: float, alternating: bool = False) -> list:
    """The float inputs moved by a relative ``step``: all the same way, or (alternating)
    one element up and the next down, which shows a sum that cancels."""
    out = []
    for v in inputs:
        if isinstance(v, float):
            out.append(v * (1 + step))
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
            signs = (-1.) ** np.arange(v.size).reshape(v.shape) if alternating else 1.
            out.append((v * (1 + step * signs)).astype(v.dtype))
        else:
            out.append(v)
    return out


def ill_conditioned(m) -> bool:
    """Every differing value is one that JAX itself does not compute stably: moving
    the float inputs by a relative 1e-6 (together, or alternately up and down), or
    the results of JAX's sin, exp, tanh... by a relative 4e-7 (a few float32 steps
    either way), changes JAX's result there by more than the comparison allows, or
    brings it to minijax's value."""
    if not _values_only(m):
        return False
    mini, real = _leaves(m.mini.value), _leaves(m.real.value)
    others = []
    reruns = [dict(inputs=_perturbed(m.program.inputs, step, alternating))
              for step in (1e-6, -1e-6) for alternating in (False, True)]
    reruns += [dict(nudge=4e-7), dict(nudge=-4e-7)]
    for rerun in reruns:
        outcome = m.rerun("jax", **rerun)
        if outcome.error is not None:
            continue
        others.append(_leaves(outcome.value))
    if any(len(o) != len(real) for o in others):
        return False
    for i, (a, b) in enumerate(zip(mini, real)):
        if a.shape != b.shape:
            return False
        wrong = ~_close(a, b)
        unstable = np.zeros_like(wrong)
        for other in others:
            c = other[i]
            if c.shape != b.shape:
                return False
            unstable |= ~_close(c, b) | _close(c, a)
        if (wrong & ~unstable).any():
            return False
    return True


TINY = np.finfo(np.float32).tiny  # the smallest normal float32


def _extreme_input(m) -> bool:
    for v in m.program.inputs:
        a = np.abs(np.asarray(v, np.float64))
        if ((a >= 80) & np.isfinite(a)).any() or ((a > 0) & (a <= 1e-30)).any():
            return True
    return False


def subnormal(m) -> bool:
    """Values differ only where one side is 0, subnormal or not finite, in a program
    whose inputs reach the range where a subnormal can arise (|x| >= 80, |x| <= 1e-30)."""
    if not (_values_only(m) and _extreme_input(m)):
        return False
    for a, b in zip(_leaves(m.mini.value), _leaves(m.real.value)):
        edge = (np.abs(a) < TINY) | ~np.isfinite(a) | (np.abs(b) < TINY) | ~np.isfinite(b)
        if (~_close(a, b) & ~edge).any():
            return False
    return True


ZERO_DERIVATIVE = ("jnp.sign", "jnp.floor", "jnp.ceil", "jnp.round", "astype", " > ", " < ",
                   " == ", " != ", " >= ", " <= ", "jnp.where", "jnp.isnan", "jnp.isfinite",
                   "zeros_like", "ones_like", "jnp.any", "jnp.all")


def escaped_closure_under_jit(m) -> bool:
    """A custom rule inside jit read a tracer of jit's finished staging: JAX fails only
    if the compiled code reads it, minijax always."""
    if not (type(m.mini.error).__name__ == "UnexpectedTracerError"
            and "DynamicJaxprTracer" in str(m.mini.error) and "custom_jvp" in m.source):
        return False
    # JAX fails later, or not at all: compiling code that reads the stale tracer, or at
    # a later misuse in the program (a custom_vjp closing over a differentiated value).
    return (m.real.error is None or type(m.real.error).__name__ == "CustomVJPException"
            or (type(m.real.error).__name__ == "TypeError"
                and "No constant handler for type" in str(m.real.error)))


def complex_numbers(m) -> bool:
    return "of type complex is not a valid minijax type" in str(m.mini.error or "")


def integer_negative_power(m) -> bool:
    """NumPy refuses an integer to a negative integer power; XLA computes some number."""
    return (type(m.mini.error).__name__ == "ValueError" and m.real.error is None
            and "Integers to negative integer powers are not allowed" in str(m.mini.error))


def numpy_reshape(m) -> bool:
    """JAX reshapes a NumPy array with NumPy's reshape, and returns a NumPy array."""
    return ("reshape" in m.source and m.mini.error is None and bool(m.problems)
            and all("minijax gives a array, JAX a numpy array" in p for p in m.problems))


def numpy_passthrough(m) -> bool:
    """minijax hands back a NumPy input that no operation changed; JAX an Array."""
    return (m.mini.error is None and bool(m.problems)
            and all("minijax gives a numpy array, JAX a array" in p for p in m.problems))


def numpy_in_custom_rules(m) -> bool:
    """JAX's custom rules computed with NumPy on NumPy inputs; minijax's with Arrays."""
    return (("custom_jvp" in m.source or "custom_vjp" in m.source)
            and m.mini.error is None and bool(m.problems)
            and all("minijax gives a array, JAX a numpy array" in p for p in m.problems))


def weak_tangent(m) -> bool:
    """Only weak types differ, JAX's being weak, in a program that calls jvp."""
    return (m.mini.error is None and m.real.error is None and bool(m.problems)
            and all("weak_type is False in minijax, True in JAX" in p for p in m.problems)
            and "jax.jvp(" in m.source)


def scalar_constants_under_jit(m) -> bool:
    """Only weak types differ, minijax's being weak, in a jitted program raising a value
    to the power of a jnp.int32 scalar made inside it."""
    return (m.mini.error is None and m.real.error is None and bool(m.problems)
            and all("weak_type is True in minijax, False in JAX" in p for p in m.problems)
            and "jax.jit(" in m.source
            and re.search(r"(\*\*|jnp\.power\([^,]+,)\s*jnp\.int32\(", m.source) is not None)


def explicit_broadcast(m) -> bool:
    """Printed jaxprs differ, minijax's having more broadcast_in_dim equations."""
    mini, real = str(m.mini.value), str(m.real.value)
    return (m.mini.error is None and m.real.error is None and bool(m.problems)
            and all("(as printed)" in p for p in m.problems)
            and mini.count("broadcast_in_dim") > real.count("broadcast_in_dim"))


DELIBERATE = [
    Entry(
        "complex",
        "Complex numbers",
        "minijax has no complex dtype: a complex number (a Python `complex`, or the "
        "result of `(-1.75) ** 0.5` in Python) is a `TypeError` where JAX computes with "
        "`complex64`.",
        complex_numbers,
        "def program(x, y):\n    return jnp.sin(y ** 0.5)",
        np.array([1.0], np.float32), -1.75),
    Entry(
        "subnormals",
        "Subnormal numbers",
        "NumPy keeps float32 subnormals (below about 1.2e-38); JAX on CPU flushes them to "
        "zero, so a program that goes through one (`exp(-100.)`, the product of two tiny "
        "numbers) can give 0, inf or nan in one library and a finite number in the other.",
        subnormal,
        "def program(x, y):\n    return jnp.log(jnp.exp(x))",
        np.array([-100.0, 1.0], np.float32), 0.0),
    Entry(
        "rounding",
        "Rounding in the last bits",
        "NumPy computes `sin`, `exp`, `tanh` and the rest, not XLA, so results can differ "
        "in the last bits of a float32; a program that magnifies those bits (a comparison "
        "or `floor` at a tie, `tanh(x) == 1.` where XLA's `tanh` reaches 1 sooner, an "
        "overflow to inf, `sin` of 1e30) can then give different "
        "values; so can a sum that cancels (`1e30 - 1e30 - 3.`), which NumPy and XLA add "
        "in different orders. The fuzzer counts a difference as rounding only where moving "
        "the inputs by a relative 1e-6 (together, or alternately up and down), or the "
        "results of JAX's `sin`, `exp`... by a few float32 steps, moves JAX's own result "
        "by more than the tolerance.",
        ill_conditioned,
        "def program(x, y):\n    return jnp.tanh(x) == 1.",
        np.array([0.5, 8.25], np.float32), 0.0),
    Entry(
        "closure_under_jit",
        "A custom rule closing over a differentiated value, under jit",
        "A `custom_jvp` function that closes over a value being differentiated is an "
        "`UnexpectedTracerError` in minijax, as in JAX without `jit`. Inside `jit`, the "
        "rule of a `custom_jvp` function runs only when the staged function is "
        "differentiated, after staging has finished, so a value of the staging that it "
        "closes over (differentiated or not) is a tracer whose trace is over. JAX 0.10.2 "
        "keeps that tracer as a constant of the differentiated jaxpr and fails only when "
        "compiling code that reads it, with an internal `TypeError` (\"No constant "
        "handler for type: ...DynamicJaxprTracer\"); if the function's result is unused, "
        "XLA drops that code and JAX returns a result, and if the program goes wrong later "
        "(a `custom_vjp` closing over a differentiated value), JAX reports that instead. "
        "minijax reports the escaped tracer when the rule runs, in every case.",
        escaped_closure_under_jit,
        "def f(x):\n"
        "    c = jnp.mean(x)\n"
        "    @jax.custom_jvp\n"
        "    def g(a):\n"
        "        return jnp.sin(a) * c\n"
        "    g.defjvps(lambda t, ans, a: jnp.cos(a) * c * t)\n"
        "    return jnp.sum(g(x))\n"
        "def program(x, y):\n    return jax.grad(jax.jit(f))(x)",
        np.array([0.5, -1.0], np.float32), 0.0),
    Entry(
        "numpy_reshape",
        "Reshaping a NumPy array",
        "`jnp.reshape` of a NumPy array gives a NumPy array in JAX, which hands NumPy input "
        "to NumPy's own reshape; minijax returns an `Array`, as every other function does.",
        numpy_reshape,
        "def program(x, y):\n    return jnp.reshape(y, -1)",
        np.array(0.0, np.float32), np.array(-5, np.int32)),
    Entry(
        "integer_negative_power",
        "Integer arrays to negative integer powers",
        "`x ** y` with integer arrays and a negative `y` has no integer answer. NumPy, "
        "which minijax computes with, raises `ValueError`; XLA returns a number anyway "
        "(for `(-5) ** -5`, 1481938659). minijax keeps NumPy's refusal rather than give "
        "a meaningless value.",
        integer_negative_power,
        "def program(x, y):\n    return jax.jit(lambda y: y ** y)(y)",
        np.array(0.0, np.float32), np.array(-5, np.int32)),
    Entry(
        "numpy_passthrough",
        "A NumPy input that nothing changes",
        "`x.ravel()` of a vector and `x.astype(x.dtype)` change nothing, and minijax "
        "then returns the input itself: under `jvp` or `linearize` a NumPy `x` comes back "
        "as the NumPy array it was. JAX compiles these two `jax.numpy` functions with "
        "`jit`, whose results are new JAX arrays, and returns an `Array` (except "
        "`ravel` under `linearize`); it returns the input itself from others, such as "
        "`x.reshape(x.shape)`, as minijax does. The values are the same.",
        numpy_passthrough,
        "def program(x, y):\n"
        "    return jax.jvp(lambda x: x.ravel(), (x,), (jnp.ones_like(x),))",
        np.array([0.0, 1.0], np.float32), 0.0),
    Entry(
        "numpy_in_custom_rules",
        "NumPy inputs reaching a custom rule",
        "`vjp`, `grad` and `value_and_grad` of JAX 0.10.2 wrap a NumPy input in a "
        "NumPy subclass of their own (`TypedNdArray`) rather than a JAX array. A "
        "`custom_jvp` or `custom_vjp` function's primal work then runs on that NumPy "
        "value, with NumPy's arithmetic: `a * a` gives a NumPy scalar, and so does the "
        "function's value (or its auxiliary output, with `has_aux`). minijax makes NumPy "
        "inputs `Array`s there, and returns `Array`s. The values are the same.",
        numpy_in_custom_rules,
        "def program(x, y):\n"
        "    @jax.custom_jvp\n"
        "    def h(a):\n"
        "        return a * a\n"
        "    h.defjvp(lambda p, t: (p[0] * p[0], 2. * p[0] * t[0]))\n"
        "    return jax.value_and_grad(h)(y)",
        0.0, np.array(0.5, np.float32)),
    Entry(
        "weak_tangent",
        "Weak types of tangents",
        "A tangent can be strongly typed while its primal is weakly typed: pow's rule "
        "makes the tangent of `y ** 2.` strong for a Python float `y`, in both libraries, "
        "and so is a `jnp.float32` tangent given to `jvp` for a Python float. JAX "
        "compiles each `jax.numpy` function with `jit`, inside which a tangent has its "
        "primal's type, so the next such function (`jnp.sin(y ** 2.)`) gives a weak "
        "tangent again; minijax's functions are plain Python, and the tangent stays "
        "strong. Only `weak_type` differs, never a value.",
        weak_tangent,
        "def program(x, y):\n    return jax.jvp(lambda y: jnp.sin(y ** 2.), (y,), (y,))",
        np.array([0.5], np.float32), 1.5),
    Entry(
        "scalar_constants_under_jit",
        "Arrays made inside jit",
        "Inside `jit`, JAX stages even the arrays that `jax.numpy` makes from constants "
        "(`jnp.int32(2)`, `jnp.array(3.)`, `jnp.zeros(2)`, `jnp.ones`, `jnp.arange(3)`, "
        "`jnp.linspace`): they are tracers there, so `int()` of one, or Python control "
        "flow on one, raises, and "
        "`jnp.power` by `jnp.int32(2)` takes its general path, whose result is strongly "
        "typed. minijax makes them concrete arrays, as outside `jit` (constants of the "
        "jaxpr, where JAX stages `broadcast_in_dim` or `iota`): `int()` works, and the "
        "power is unrolled as `integer_pow`, so a weakly typed base keeps its weak type. "
        "Values agree.",
        scalar_constants_under_jit,
        "def program(x, y):\n    return jax.jit(lambda y: jnp.power(y, jnp.int32(2)))(y)",
        np.array(0., np.float32), 2.5),
    Entry(
        "explicit_broadcast",
        "Scalars beside arrays in jaxprs",
        "JAX's `lax` operations take a scalar beside an array, and an axis of size 1 "
        "beside a longer one, so `x * 2.` stages one equation, `mul a 2.0:f32[]`. "
        "minijax's `lax` wants operands of one shape: `minijax.numpy` broadcasts them "
        "first, and its jaxprs hold a `broadcast_in_dim` equation more for each such "
        "operand. The values are the same.",
        explicit_broadcast,
        "def program(x, y):\n    return jax.make_jaxpr(lambda a: a * 2.)(x)",
        np.array([0.5, -1.0], np.float32), 0.0),
]
