"""minijax.test_util.check_grads beside jax.test_util.check_grads.

Each case runs the same check with both libraries and compares the outcome:
passed, or the exception type and, for an AssertionError, the first two lines of
its message (the tolerance and which derivative failed), which minijax words as
JAX does.
"""
import importlib
from functools import partial

import numpy as np
import pytest

from minijax.test_util import check_grads as mini_check_grads
from parity import assert_same


def check_grads(jax):
    """The library's check_grads: minijax.test_util's or jax.test_util's."""
    return importlib.import_module(f"{jax.__name__}.test_util").check_grads


def outcome(jax, f, args, order, **kwargs) -> str:
    """'passed', or what check_grads raised (type, and the head of an AssertionError)."""
    try:
        check_grads(jax)(f, args, order, **kwargs)
    except AssertionError as e:
        return "AssertionError: " + " | ".join(str(e).strip().splitlines()[:2])
    except Exception as e:  # noqa: BLE001  (compared with the other library's)
        return type(e).__name__
    return "passed"


# ---------------------------------------------------------------------------
# Functions to check, written once for both libraries.


def sin_with_rule(jax, jnp, scale=1.0, derivative=None):
    """sin with a custom JVP rule whose derivative is ``scale * cos`` (wrong unless
    scale is 1) or ``derivative(x)``."""
    derivative = derivative or (lambda x: scale * jnp.cos(x))

    @jax.custom_jvp
    def f(x):
        return jnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        x, = primals
        x_dot, = tangents
        return f(x), derivative(x) * x_dot

    return f


def log1pexp(jax, jnp):
    """The tutorial's numerically stable rule."""
    @jax.custom_jvp
    def f(x):
        return jnp.log(1. + jnp.exp(x))

    @f.defjvp
    def f_jvp(primals, tangents):
        x, = primals
        x_dot, = tangents
        return f(x), (1 - 1 / (1 + jnp.exp(x))) * x_dot

    return f


def product_with_rule(jax, jnp, forget_x=False):
    """x * sin(y), whose rule may forget the factor x in the y term."""
    @jax.custom_jvp
    def f(x, y):
        return x * jnp.sin(y)

    @f.defjvp
    def f_jvp(primals, tangents):
        x, y = primals
        x_dot, y_dot = tangents
        y_term = jnp.cos(y) * y_dot if forget_x else x * jnp.cos(y) * y_dot
        return f(x, y), jnp.sin(y) * x_dot + y_term

    return f


def sin_with_vjp(jax, jnp, scale=1.0):
    """sin with a custom VJP whose backward rule is off by ``scale``."""
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    def f_fwd(x):
        return f(x), jnp.cos(x)

    def f_bwd(cos_x, y_bar):
        return (scale * cos_x * y_bar,)

    f.defvjp(f_fwd, f_bwd)
    return f


def clip_gradient(jax, jnp):
    """The tutorial's clip_gradient: the identity, with a clipped backward pass."""
    @jax.custom_vjp
    def f(lo, hi, x):
        return x

    def f_fwd(lo, hi, x):
        return x, (lo, hi)

    def f_bwd(res, g):
        lo, hi = res
        return (None, None, jnp.clip(g, lo, hi))

    f.defvjp(f_fwd, f_bwd)
    return f


CORRECT = {
    "sin_scalar": lambda jax, jnp: (jnp.sin, (0.7,)),
    "sin_vector": lambda jax, jnp: (jnp.sin, (jnp.array([0.5, 1.0, 2.0]),)),
    "polynomial": lambda jax, jnp: (lambda x: x ** 3 - 2. * x, (1.5,)),
    "two_args": lambda jax, jnp: (lambda x, y: jnp.sum(x * jnp.exp(-y)),
                                  (jnp.array([1.0, 2.0]), jnp.array([0.5, -0.5]))),
    "pytree_args": lambda jax, jnp: (lambda p: p["w"] * jnp.tanh(p["b"]),
                                     ({"w": jnp.array([1.0, -2.0]), "b": 0.3},)),
    "tuple_output": lambda jax, jnp: (lambda x: (jnp.sin(x), x * x), (jnp.array([0.1, 0.2]),)),
    "matmul": lambda jax, jnp: (lambda a, b: a @ b,
                                (jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([0.5, -1.0]))),
    "custom_jvp_sin": lambda jax, jnp: (sin_with_rule(jax, jnp), (1.0,)),
    "custom_jvp_log1pexp": lambda jax, jnp: (log1pexp(jax, jnp), (jnp.array([-3.0, 0.0, 5.0]),)),
    "custom_jvp_two_args": lambda jax, jnp: (product_with_rule(jax, jnp), (2.0, 0.5)),
    "jit": lambda jax, jnp: (jax.jit(lambda x: jnp.cos(x) * x), (jnp.array([0.3, 1.3]),)),
}


# Order 2 for a few: eager JAX takes seconds for each second-order check.
SECOND_ORDER = ["polynomial", "pytree_args", "custom_jvp_sin", "custom_jvp_log1pexp", "jit"]


@pytest.mark.parametrize("name, order", [(name, 1) for name in CORRECT]
                         + [(name, 2) for name in SECOND_ORDER])
def test_correct_functions_pass(name, order):
    def run(jax, jnp):
        f, args = CORRECT[name](jax, jnp)
        print(outcome(jax, f, args, order))
    assert_same(run)


@pytest.mark.parametrize("name, order", [("two_args", 1), ("polynomial", 2), ("custom_jvp_sin", 2)])
def test_linearize_mode(name, order):
    def run(jax, jnp):
        f, args = CORRECT[name](jax, jnp)
        print(outcome(jax, f, args, order, modes=("lin",)))
    assert_same(run)


def test_third_order():
    assert_same(lambda jax, jnp: print(outcome(jax, lambda x: x ** 3 - 2. * x, (1.5,), 3)))


WRONG_JVP = {
    "scaled_rule": lambda jax, jnp: (sin_with_rule(jax, jnp, scale=1.01), (1.0,)),
    "scaled_rule_vector": lambda jax, jnp: (sin_with_rule(jax, jnp, scale=1.05),
                                            (jnp.array([1.0, 2.0, 3.0]),)),
    "forgotten_factor": lambda jax, jnp: (product_with_rule(jax, jnp, forget_x=True), (2.0, 0.5)),
}


@pytest.mark.parametrize("modes", [("fwd",), ("rev",), ("lin",), ("fwd", "rev")])
@pytest.mark.parametrize("name", WRONG_JVP)
def test_wrong_custom_jvp_rule_is_caught(name, modes):
    def run(jax, jnp):
        f, args = WRONG_JVP[name](jax, jnp)
        result = outcome(jax, f, args, 1, modes=modes)
        assert result.startswith("AssertionError"), result
        print(result)
    assert_same(run)


def test_wrong_rule_caught_in_each_mode_separately():
    """The same wrong rule fails in forward mode (JVP tangent) and in reverse mode
    (VJP cotangent projection), each on its own."""
    def run(jax, jnp):
        f = sin_with_rule(jax, jnp, scale=1.01)
        for modes in [("fwd",), ("rev",)]:
            print(modes, outcome(jax, f, (1.0,), 1, modes=modes))
    assert_same(run)
    f = sin_with_rule(__import__("minijax"), __import__("minijax.numpy").numpy, scale=1.01)
    with pytest.raises(AssertionError, match="JVP tangent"):
        mini_check_grads(f, (1.0,), 1, modes=("fwd",))
    with pytest.raises(AssertionError, match="VJP cotangent projection"):
        mini_check_grads(f, (1.0,), 1, modes=("rev",))


def test_wrong_rule_only_at_second_order():
    """A small-angle rule for sin (derivative 1) is right to first order near 0
    and passes at order 1; its second derivative is 0, not -sin(x)."""
    def run(jax, jnp):
        f = sin_with_rule(jax, jnp, derivative=lambda x: 1.0)
        print(outcome(jax, f, (0.01,), 1))
        print(outcome(jax, f, (0.01,), 2))
    assert_same(run)


@pytest.mark.parametrize("order", [1, 2])
def test_custom_vjp_right_in_reverse_mode_only(order):
    def run(jax, jnp):
        f = sin_with_vjp(jax, jnp)
        print("rev:", outcome(jax, f, (1.0,), order, modes=("rev",)))
        print("fwd and rev:", outcome(jax, f, (1.0,), order))
        print("fwd:", outcome(jax, f, (1.0,), order, modes=("fwd",)))
    assert_same(run)


def test_wrong_custom_vjp_rule_is_caught():
    def run(jax, jnp):
        print(outcome(jax, sin_with_vjp(jax, jnp, scale=0.98), (1.0,), 1, modes=("rev",)))
    assert_same(run)


def test_clip_gradient_fails_the_check_as_designed():
    """clip_gradient's backward pass is not the derivative of the identity,
    on purpose: where the gradient is clipped, the check fails."""
    def run(jax, jnp):
        f = clip_gradient(jax, jnp)
        x = jnp.array([0.5, -2.0])
        print(outcome(jax, partial(f, -0.1, 0.1), (x,), 1, modes=("rev",)))
        print(outcome(jax, partial(f, -10., 10.), (x,), 1, modes=("rev",)))
    assert_same(run)


@pytest.mark.parametrize("tolerance", [dict(atol=0.05, rtol=0.05), dict(rtol=1e-6),
                                       dict(atol={np.float32: 0.05}, rtol={np.float32: 0.05})])
def test_tolerances(tolerance):
    def run(jax, jnp):
        print(outcome(jax, sin_with_rule(jax, jnp, scale=1.01), (1.0,), 1, **tolerance))
        print(outcome(jax, jnp.sin, (jnp.array([0.5, 1.5]),), 1, **tolerance))
    assert_same(run)


@pytest.mark.parametrize("eps", [1e-1, 1e-2, 1e-3])
def test_step_size(eps):
    def run(jax, jnp):
        print(outcome(jax, lambda x: x ** 3, (1.5,), 2, eps=eps))
    assert_same(run)


# ---------------------------------------------------------------------------
# minijax's own report and checks.


def _failure(f, args, order=1, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        mini_check_grads(f, args, order, **kwargs)
    return str(info.value)


def test_report_names_order_mode_numbers_and_tolerance():
    import minijax
    import minijax.numpy as jnp
    message = _failure(sin_with_rule(minijax, jnp, scale=1.01), (1.0,), modes=("fwd",))
    lines = message.splitlines()
    assert lines[:2] == ["Not equal to tolerance rtol=0.002, atol=0.002", "JVP tangent"]
    assert "order 1, mode 'fwd'" in lines[2]
    assert lines[3].split()[0] == "jvp" and lines[4].split()[:2] == ["finite", "differences"]
    jvp_value, fd_value = float(lines[3].split()[-1]), float(lines[4].split()[-1])
    assert jvp_value / fd_value == pytest.approx(1.01, rel=1e-3)  # both along one direction
    gap, bound = lines[5].split(" = ")[1:]
    assert float(gap.split()[0]) == pytest.approx(jvp_value - fd_value, rel=1e-2)
    assert float(bound) == pytest.approx(0.002 + 0.002 * abs(fd_value), rel=1e-2)


def test_report_at_second_order_and_for_arrays():
    import minijax
    import minijax.numpy as jnp
    f = sin_with_vjp(minijax, jnp, scale=1.5)
    x = jnp.array([0.2, 0.4, 0.6])
    message = _failure(lambda x: jnp.sum(f(x)), (x,), modes=("rev",))
    assert "order 1, mode 'rev' (VJP)" in message
    assert "<vjp(ct), t>" in message and "<ct, jvp(t)>" in message

    g = sin_with_rule(minijax, jnp, derivative=lambda x: jnp.cos(x) * (1 + 0.5 * (x > 1.0)))
    message = _failure(g, (jnp.array([0.5, 1.5]),), modes=("fwd",))
    assert "1 of 2 elements differ; the worst, at index (1,)" in message


def test_deterministic():
    import minijax
    import minijax.numpy as jnp
    f = sin_with_rule(minijax, jnp, scale=1.01)
    assert _failure(f, (jnp.array([1.0, 2.0]),)) == _failure(f, (jnp.array([1.0, 2.0]),))


def test_unknown_mode_is_an_error():
    """JAX silently checks nothing for a misspelt mode; minijax refuses it."""
    with pytest.raises(ValueError, match="unknown modes"):
        mini_check_grads(np.sin, (1.0,), 1, modes=("reverse",))


def test_nan_matches_nan():
    """Outside sqrt's domain, jvp and finite differences agree on nan."""
    assert_same(lambda jax, jnp: print(outcome(jax, jnp.sqrt, (jnp.array([-1.0, 4.0]),), 1)))


def test_check_jvp_and_check_vjp_directly():
    """The two single checks that check_grads is built from, as JAX exports them."""
    def run(jax, jnp):
        test_util = importlib.import_module(f"{jax.__name__}.test_util")
        f = sin_with_rule(jax, jnp, scale=1.01)
        for check, derivative in [(test_util.check_jvp, jax.jvp), (test_util.check_vjp, jax.vjp)]:
            try:
                check(f, partial(derivative, f), (1.0,))
            except AssertionError as e:
                print(" | ".join(str(e).strip().splitlines()[:2]))
    assert_same(run)


def test_direct_call_reports_without_order():
    import minijax
    from minijax.test_util import check_jvp
    with pytest.raises(AssertionError) as info:
        check_jvp(np.sin, lambda p, t: (np.sin(p[0]), 2 * np.cos(p[0]) * t[0]), (0.5,))
    assert str(info.value).splitlines()[2].startswith("the tangent from jvp differs")
    with pytest.raises(AssertionError, match="tangent: jvp has shape"):
        check_jvp(np.sin, lambda p, t: (np.sin(p[0]), np.zeros(2, np.float32)),
                  (np.float32(0.5),))
    with pytest.raises(AssertionError, match="primal and tangent: dtypes differ"):
        check_jvp(np.sin, lambda p, t: (np.sin(p[0]), np.int32(1)), (np.float32(0.5),))
    minijax.test_util.check_grads(minijax.numpy.cos, (np.float32(0.5),), 2)
