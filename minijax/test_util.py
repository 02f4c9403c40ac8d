"""Check derivatives against finite differences, as ``jax.test_util`` does.

``check_grads(f, args, order)`` tests every derivative minijax computes for
``f`` at ``args``, up to ``order``, in two ways:

- forward mode (``"fwd"``): the tangent from ``jvp`` along a random direction
  ``t`` must match the central difference ``(f(x + eps t) - f(x - eps t)) / 2 eps``;
- reverse mode (``"rev"``): for a random tangent ``t`` and a random output
  cotangent ``ct``, ``<vjp(ct), t>`` must match ``<ct, jvp(t)>``, where
  ``jvp(t)`` is again a central difference.

Higher orders repeat both checks on the derivative functions themselves:
``jvp`` of ``f`` (tangents equal to the primals) and the VJP of ``f`` applied to
its own output.  Directions are drawn from a seeded NumPy generator, the same
draws JAX makes, so a check is deterministic.  Step and tolerances are JAX's
defaults for float32: ``eps = 1e-4`` and ``atol = rtol = 2e-3``, scaled by the
number of elements compared.  A failed check raises ``AssertionError`` naming
the order, the mode, the two numbers and the tolerance.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from minijax.api import jvp, linearize, vjp
from minijax.tree_util import tree_flatten, tree_map

__all__ = ["check_grads", "check_jvp", "check_vjp", "numerical_jvp"]

EPS = 1e-4
MODES = ("fwd", "rev", "lin")
SEED = 0

# JAX's default gradient tolerances for real dtypes (minijax has no complex
# numbers), used as both atol and rtol.  minijax computes in float32, so float64
# counts as float32.
DEFAULT_GRADIENT_TOLERANCE = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 2e-3}
_CANONICAL = {np.dtype(np.float64): np.dtype(np.float32)}

Tolerance = float | dict | None


# ---------------------------------------------------------------------------
# Values: leaves of pytrees, as NumPy arrays or Python scalars.


def _dtype(x: Any) -> np.dtype:
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def _in_dtype_of(x: Any, value: Any) -> Any:
    """``value`` as an array of ``x``'s dtype, or a Python scalar if ``x`` is one."""
    result = np.asarray(value, dtype=_dtype(x))
    return result.item() if type(x) in (bool, int, float) else result


def _rand_like(rng: np.random.RandomState, x: Any) -> Any:
    """Standard normal values of ``x``'s shape and dtype."""
    return _in_dtype_of(x, rng.randn(*np.shape(x)))


def _scale(tree: Any, factor: float) -> Any:
    def scale(x):
        return _in_dtype_of(x, np.multiply(x, np.array(factor, _dtype(x)), dtype=_dtype(x)))
    return tree_map(scale, tree)


def _combine(op: Callable, xs: Any, ys: Any) -> Any:
    return tree_map(lambda x, y: _in_dtype_of(x, op(np.asarray(x), np.asarray(y))), xs, ys)


def _difference(x: Any, y: Any) -> np.ndarray:
    """``x - y`` in ``x``'s dtype, with ``inf - inf = 0`` (equal values cancel)."""
    dtype = _dtype(x)
    with np.errstate(invalid="ignore"):
        return np.where(np.equal(x, y), np.array(0, dtype), np.subtract(x, y, dtype=dtype))


def _inner_product(xs: Any, ys: Any) -> np.ndarray:
    """``sum(x * y)`` over all leaves."""
    leaves = zip(tree_flatten(xs)[0], tree_flatten(ys)[0])
    return functools.reduce(np.add, [np.dot(np.ravel(x), np.ravel(y)) for x, y in leaves])


def numerical_jvp(f: Callable, primals: Sequence, tangents: Sequence, eps: float = EPS) -> Any:
    """The central difference ``(f(x + eps t) - f(x - eps t)) / (2 eps)``."""
    delta = _scale(tangents, eps)
    f_pos = f(*_combine(np.add, primals, delta))
    f_neg = f(*_combine(np.subtract, primals, delta))
    return _scale(tree_map(_difference, f_pos, f_neg), 0.5 / eps)


# ---------------------------------------------------------------------------
# Tolerances and the comparison.


def _canonical(dtype: np.dtype) -> np.dtype:
    return _CANONICAL.get(np.dtype(dtype), np.dtype(dtype))


def _tolerance(dtype: np.dtype, tol: Tolerance) -> float:
    """The tolerance for ``dtype``: ``tol`` itself if a number, else looked up
    in ``tol`` (a dict by dtype) and then in JAX's defaults (0 for integers)."""
    if tol is not None and not isinstance(tol, dict):
        return tol
    table = {**DEFAULT_GRADIENT_TOLERANCE,
             **{_canonical(k): v for k, v in (tol or {}).items()}}
    return table.get(_canonical(dtype), 0)


def _where(err_msg: str) -> str:
    """'check_grads, order 2, mode 'fwd' (JVP of VJP): ' from the label that
    check_grads builds; nothing for a direct call."""
    words = err_msg.split()
    if not words:
        return ""
    mode = {"JVP": "fwd", "VJP": "rev", "LIN": "lin"}.get(words[0], words[0])
    return f"check_grads, order {words.count('of') + 1}, mode {mode!r} ({err_msg}): "


class _Check(NamedTuple):
    """What a comparison checks, for its failure report."""

    label: str  # JAX's label, e.g. "VJP of JVP cotangent projection"
    what: str  # one sentence on the check
    names: tuple[str, str]  # what the actual and the expected numbers are


def _label(err_msg: str, part: str) -> str:
    return f"{err_msg} {part}" if err_msg else part


def _check(err_msg: str, part: str, names: tuple[str, str], what: str) -> _Check:
    return _Check(_label(err_msg, part), _where(err_msg) + what, names)


def _check_close(actual: Any, expected: Any, atol: Tolerance, rtol: Tolerance,
                 check: _Check) -> None:
    """Raise AssertionError unless each leaf of ``actual`` is within
    ``atol + rtol * |expected|`` of ``expected`` (both scaled by its size)."""
    for a, b in zip(tree_flatten(actual)[0], tree_flatten(expected)[0]):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise AssertionError(f"{check.label}: {check.names[0]} has shape {a.shape} "
                                 f"but {check.names[1]} has shape {b.shape}")
        leaf_atol = max(_tolerance(a.dtype, atol), _tolerance(b.dtype, atol)) * a.size
        leaf_rtol = max(_tolerance(a.dtype, rtol), _tolerance(b.dtype, rtol)) * b.size
        # As in JAX (through NumPy), a zero rtol means NumPy's default.
        _assert_allclose(a, b, leaf_atol, leaf_rtol or 1e-7, check)


def _assert_allclose(a: np.ndarray, b: np.ndarray, atol: float, rtol: float,
                     check: _Check) -> None:
    """Raise AssertionError where ``|a - b|`` exceeds the allowed ``atol + rtol * |b|``
    (nan matches nan, an infinity matches itself)."""
    a, b = a.astype(np.result_type(a, np.float64)), b.astype(np.result_type(b, np.float64))
    bound = atol + rtol * np.abs(b)
    with np.errstate(invalid="ignore"):
        gap = np.abs(a - b)
        bad = ~((gap <= bound) | (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b)))
    if bad.any():
        raise AssertionError(_report(a, b, gap, bound, bad, f"rtol={rtol:g}, atol={atol:g}", check))


def _report(a, b, gap, bound, bad, tolerance: str, check: _Check) -> str:
    """The failure message: JAX's first two lines, then which check failed and how."""
    lines = [f"Not equal to tolerance {tolerance}", check.label, check.what]
    if a.size > 1:
        worst = np.unravel_index(np.argmax(np.where(bad, gap - bound, -np.inf)), a.shape)
        lines.append(f"  {bad.sum()} of {a.size} elements differ; the worst, at index "
                     f"{tuple(int(i) for i in worst)}:")
        a, b, gap, bound = a[worst], b[worst], gap[worst], bound[worst]
    actual, expected = check.names
    width = max(len(actual), len(expected))
    lines += [f"  {actual:<{width}}  {a.item():.7g}",
              f"  {expected:<{width}}  {b.item():.7g}",
              f"  |difference| = {gap.item():.3g} > atol + rtol * |{expected}| = {bound.item():.3g}"]
    return "\n".join(lines)


def _check_dtypes_match(xs: Any, ys: Any, label: str) -> None:
    for x, y in zip(tree_flatten(xs)[0], tree_flatten(ys)[0]):
        if _canonical(_dtype(x)) != _canonical(_dtype(y)):
            raise AssertionError(f"{label}: dtypes differ, {_dtype(x)} and {_dtype(y)}")


# ---------------------------------------------------------------------------
# One derivative, checked.


def check_jvp(f: Callable, f_jvp: Callable, args: Sequence, atol: Tolerance = None,
              rtol: Tolerance = None, eps: float = EPS, err_msg: str = "") -> None:
    """Check ``f_jvp(primals, tangents)`` (usually ``partial(jvp, f)``) against
    a central difference of ``f`` along one random direction."""
    tangent = tree_map(functools.partial(_rand_like, np.random.RandomState(SEED)), args)
    v_out, t_out = f_jvp(args, tangent)
    _check_dtypes_match(v_out, t_out, _label(err_msg, "primal and tangent"))
    v_expected = f(*args)
    _check_dtypes_match(v_out, v_expected, _label(err_msg, "primal"))
    t_expected = numerical_jvp(f, args, tangent, eps=eps)
    _check_close(v_out, v_expected, atol, rtol, _check(
        err_msg, "primal", ("jvp", "f(*args)"), "the primal output of jvp differs from f(*args)"))
    _check_close(t_out, t_expected, atol, rtol, _check(
        err_msg, "tangent", ("jvp", "finite differences"),
        f"the tangent from jvp differs from central differences (eps={eps:g})"))


def check_vjp(f: Callable, f_vjp: Callable, args: Sequence, atol: Tolerance = None,
              rtol: Tolerance = None, eps: float = EPS, err_msg: str = "") -> None:
    """Check ``f_vjp(*args)`` (usually ``partial(vjp, f)``) by the identity
    ``<vjp(ct), t> = <ct, jvp(t)>``, with ``jvp(t)`` a central difference and
    ``t``, ``ct`` random."""
    rand_like = functools.partial(_rand_like, np.random.RandomState(SEED))
    v_out, vjp_fun = f_vjp(*args)
    _check_close(v_out, f(*args), atol, rtol, _check(
        err_msg, "primal", ("vjp", "f(*args)"), "the primal output of vjp differs from f(*args)"))
    tangent = tree_map(rand_like, args)
    tangent_out = numerical_jvp(f, args, tangent, eps=eps)
    cotangent = tree_map(rand_like, v_out)
    _check_close(_inner_product(tangent, vjp_fun(cotangent)),
                 _inner_product(tangent_out, cotangent), atol, rtol, _check(
                     err_msg, "cotangent projection", ("<vjp(ct), t>", "<ct, jvp(t)>"),
                     f"the two sides of <vjp(ct), t> = <ct, jvp(t)> differ (t, ct random; "
                     f"jvp(t) by central differences, eps={eps:g})"))


# ---------------------------------------------------------------------------
# All orders.


def _jvp_from_linearize(f: Callable) -> Callable:
    def f_jvp(primals, tangents):
        out, f_lin = linearize(f, *primals)
        return out, f_lin(*tangents)
    return f_jvp


def _pullback_of_output(f: Callable) -> Callable:
    """``x -> vjp(f, x)(f(x))``: the function whose derivatives are f's second
    derivatives in reverse mode."""
    def f_vjp(*args):
        out, vjp_fun = vjp(f, *args)
        return vjp_fun(out)
    return f_vjp


# Per mode: its name in reports, the check, and the derivative it checks.
_CHECKS = {"fwd": ("JVP", check_jvp, lambda f: functools.partial(jvp, f)),
           "rev": ("VJP", check_vjp, lambda f: functools.partial(vjp, f)),
           "lin": ("LIN", check_jvp, _jvp_from_linearize)}


def check_grads(f: Callable, args: Sequence, order: int, modes: Sequence[str] = ("fwd", "rev"),
                atol: Tolerance = None, rtol: Tolerance = None, eps: float | None = None) -> None:
    """Check ``f``'s derivatives at ``args`` against finite differences.

    Args:
      f: the function to check, at ``f(*args)``.
      args: its arguments (pytrees of arrays or Python numbers).
      order: derivatives up to this order are checked.
      modes: ``"fwd"`` checks ``jvp``, ``"rev"`` checks ``vjp``, ``"lin"`` checks
        ``linearize``; at higher orders each mode is applied to each lower one.
      atol, rtol: a number, or a dict from dtype to number; default 2e-3 for float32.
      eps: the finite-difference step; default 1e-4.

    Raises:
      AssertionError: a derivative does not match.
      ValueError: a mode is not one of "fwd", "rev", "lin" (JAX ignores it).
    """
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown modes {unknown}; modes are 'fwd', 'rev' and 'lin'")
    tols = dict(atol=atol, rtol=rtol, eps=eps or EPS)

    def check_up_to(f: Callable, args: tuple, order: int, err_msg: str = "") -> None:
        for mode in (m for m in MODES if m in modes):
            name, check, derivative = _CHECKS[mode]
            label = f"{name} of {err_msg}" if err_msg else name
            check(f, derivative(f), args, err_msg=label, **tols)
            if order > 1 and mode == "rev":
                check_up_to(_pullback_of_output(f), args, order - 1, label)
            elif order > 1:
                check_up_to(derivative(f), (args, args), order - 1, label)

    check_up_to(f, tuple(args), order)
