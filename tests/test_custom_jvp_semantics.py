"""What custom_jvp does under each transformation, beside JAX.

The claims of the chapters "Using custom_jvp" and "How custom_jvp works", one test
each: evaluation, jit and vmap run only the function; jvp runs the rule; grad
transposes the rule's tangent computation; the order in which the function and the
rule run under each transformation and composition; Python control flow; pytrees in
and out; nondiff_argnums; and the errors, with JAX's exception types.

Every test runs the same code on minijax and on JAX (``parity.assert_same``), which
compares what it prints (so the order of the logged calls), returns and raises.
"""
import re
from collections import namedtuple
from functools import partial

import numpy as np
import pytest

from parity import assert_same


def first_sentence(error: Exception) -> str:
    """The exception's type and the first sentence of its message (the rest of JAX's
    messages is advice that minijax words differently)."""
    sentence = re.split(r"[.:]\s", str(error))[0]
    return f"{type(error).__name__}: {sentence}"


def logging_f(jax, jnp, calls, rule_calls_f=True):
    """sin with its rule; each call of either is printed and appended to ``calls``."""
    @jax.custom_jvp
    def f(x):
        print("called f!")
        calls.append("f")
        return jnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        print("called f_jvp!")
        calls.append("rule")
        x, = primals
        t, = tangents
        primal_out = f(x) if rule_calls_f else jnp.sin(x)
        return primal_out, jnp.cos(x) * t

    return f


def _xs(jax):
    return jax.numpy.arange(3.)


def _twice_jit(jax, f):
    jitted = jax.jit(f)
    return jitted(3.), jitted(4.)  # the second call reuses the staged program


# Each transformation and composition, with the calls expected when the rule calls f
# and when it does not.
COMPOSITIONS = {
    "eval": (lambda jax, f: f(3.), ["f"], ["f"]),
    "jit": (lambda jax, f: jax.jit(f)(3.), ["f"], ["f"]),
    "jit_called_twice": (_twice_jit, ["f"], ["f"]),
    "vmap": (lambda jax, f: jax.vmap(f)(_xs(jax)), ["f"], ["f"]),
    "make_jaxpr": (lambda jax, f: print(jax.make_jaxpr(f)(3.).in_avals), ["f"], ["f"]),
    "jvp": (lambda jax, f: jax.jvp(f, (3.,), (1.,)), ["rule", "f"], ["rule"]),
    "grad": (lambda jax, f: jax.grad(f)(3.), ["rule", "f"], ["rule"]),
    "value_and_grad": (lambda jax, f: jax.value_and_grad(f)(3.), ["rule", "f"], ["rule"]),
    "vjp": (lambda jax, f: jax.vjp(f, 3.)[1](1.), ["rule", "f"], ["rule"]),
    "linearize": (lambda jax, f: jax.linearize(f, 3.)[1](1.), ["rule", "f"], ["rule"]),
    "grad_grad": (lambda jax, f: jax.grad(jax.grad(f))(3.),
                  ["rule", "rule", "f"], ["rule"]),
    "grad_grad_grad": (lambda jax, f: jax.grad(jax.grad(jax.grad(f)))(3.),
                       ["rule", "rule", "rule", "f"], ["rule"]),
    "jvp_grad": (lambda jax, f: jax.jvp(jax.grad(f), (3.,), (1.,)),
                 ["rule", "rule", "f"], ["rule"]),
    "jit_grad": (lambda jax, f: jax.jit(jax.grad(f))(3.), ["rule", "f"], ["rule"]),
    "grad_jit": (lambda jax, f: jax.grad(jax.jit(f))(3.), ["f", "rule", "f"], ["f", "rule"]),
    "jvp_jit": (lambda jax, f: jax.jvp(jax.jit(f), (3.,), (1.,)),
                ["f", "rule", "f"], ["f", "rule"]),
    "jit_jit": (lambda jax, f: jax.jit(jax.jit(f))(3.), ["f"], ["f"]),
    "vmap_grad": (lambda jax, f: jax.vmap(jax.grad(f))(_xs(jax)), ["rule", "f"], ["rule"]),
    "grad_of_vmap": (lambda jax, f: jax.grad(lambda x: jax.vmap(f)(x).sum())(_xs(jax)),
                     ["rule", "f"], ["rule"]),
    "jvp_vmap": (lambda jax, f: jax.jvp(jax.vmap(f), (_xs(jax),), (jax.numpy.ones(3),)),
                 ["rule", "f"], ["rule"]),
    "vmap_jvp": (lambda jax, f: jax.vmap(lambda x: jax.jvp(f, (x,), (x,)))(_xs(jax)),
                 ["rule", "f"], ["rule"]),
    "vmap_jit_grad": (lambda jax, f: jax.vmap(jax.jit(jax.grad(f)))(_xs(jax)),
                      ["rule", "f"], ["rule"]),
    "jit_grad_jit": (lambda jax, f: jax.jit(jax.grad(jax.jit(f)))(3.),
                     ["f", "rule", "f"], ["f", "rule"]),
}


@pytest.mark.parametrize("rule_calls_f", [True, False], ids=["rule_calls_f", "rule_skips_f"])
@pytest.mark.parametrize("name", COMPOSITIONS)
def test_order_of_calls(name, rule_calls_f):
    transform, expected_calling, expected_skipping = COMPOSITIONS[name]

    def run(jax, jnp):
        calls = []
        out = transform(jax, logging_f(jax, jnp, calls, rule_calls_f))
        return out, calls

    _, calls = assert_same(run)
    assert calls == (expected_calling if rule_calls_f else expected_skipping)


def _sin_with_rule(jax, jnp, rule):
    """sin with the rule ``rule(f, jnp)``."""
    @jax.custom_jvp
    def f(x):
        return jnp.sin(x)
    f.defjvp(rule(f, jnp))
    return f


# A rule that is not sin's derivative, so that its results are recognizable.
SLOPE_2 = lambda f, jnp: lambda p, t: (f(p[0]), 2. * t[0])  # noqa: E731


def test_jvp_uses_the_rule_not_the_body():
    def run(jax, jnp):
        f = _sin_with_rule(jax, jnp, SLOPE_2)
        return jax.jvp(f, (jnp.float32(3.),), (jnp.float32(1.),))

    _, y_dot = assert_same(run)
    assert float(y_dot) == 2.


def test_grad_transposes_the_rule():
    a = np.array([[1., 2., 0.], [0., 1., 3.], [4., 0., 1.]], np.float32)
    w = np.array([1., -1., 2.], np.float32)

    def run(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x)
        # A linear rule that is not sin's derivative: the tangent is A t.
        f.defjvp(lambda primals, tangents: (f(primals[0]), jnp.asarray(a) @ tangents[0]))
        x = jnp.array([0.5, 1.0, 2.0])
        _, f_vjp = jax.vjp(f, x)
        return (jax.grad(lambda x: jnp.asarray(w) @ f(x))(x), f_vjp(jnp.asarray(w)),
                jax.linearize(f, x)[1](jnp.asarray(w)))

    grad_out, (vjp_out,), lin_out = assert_same(run)
    np.testing.assert_allclose(np.asarray(grad_out), a.T @ w)  # the transpose of A
    np.testing.assert_allclose(np.asarray(vjp_out), a.T @ w)
    np.testing.assert_allclose(np.asarray(lin_out), a @ w)


def test_a_rule_applies_at_every_order_only_if_it_calls_f():
    def run(jax, jnp):
        def sin_claiming_slope_2(rule_calls_f):
            @jax.custom_jvp
            def f(x):
                return jnp.sin(x)

            @f.defjvp
            def f_jvp(primals, tangents):
                x, = primals
                return (f(x) if rule_calls_f else jnp.sin(x)), 2. * tangents[0]
            return f

        def newton_step(h, x):
            y, dy = jax.value_and_grad(h)(x)
            return x - y / dy

        return tuple(jax.grad(lambda x: newton_step(sin_claiming_slope_2(calls), x))(3.)
                     for calls in (True, False))

    calling, skipping = assert_same(run)
    assert float(calling) == 0.  # the outer grad used the rule: y' = 2
    np.testing.assert_allclose(float(skipping), 1 - np.cos(3.) / 2, rtol=1e-6)


def test_defjvps_with_none_and_several_arguments():
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x, y):
            return x ** 2 * y
        f.defjvps(lambda x_dot, out, x, y: 2 * x * y * x_dot,
                  lambda y_dot, out, x, y: x ** 2 * y_dot)

        @jax.custom_jvp
        def g(x, y):
            return x ** 2 * y
        g.defjvps(lambda x_dot, out, x, y: 2 * x * y * x_dot, None)

        @jax.custom_jvp
        def h(x):
            return jnp.sin(x)
        h.defjvps(lambda t, ans, x: jnp.cos(x) * t)

        return (jax.grad(f, (0, 1))(2., 3.), jax.grad(g, (0, 1))(2., 3.),
                jax.grad(h)(3.), jax.grad(jax.grad(h))(3.),
                jax.jvp(f, (jnp.float32(2.), jnp.float32(3.)),
                        (jnp.float32(1.), jnp.float32(1.))))

    (_, (_, g_y), *_) = assert_same(run)
    assert float(g_y) == 0.


def test_keyword_arguments_and_defaults_are_bound_to_positions():
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x, y=2.):
            return x * y

        @f.defjvp
        def f_jvp(primals, tangents):
            print("rule got", len(primals), "primals and", len(tangents), "tangents")
            x, y = primals
            x_dot, y_dot = tangents
            return f(x, y), x_dot * y + x * y_dot

        return (f(1.), f(1., 3.), f(1., y=3.), f(y=3., x=1.), jax.grad(f)(1.),
                jax.grad(f)(1., y=3.), jax.grad(f, 1)(1., 3.), jax.jit(f)(1., y=3.),
                jax.jvp(lambda x: f(x, y=5.), (jnp.float32(1.),), (jnp.float32(1.),)))

    assert_same(run)


def test_keyword_arguments_that_cannot_be_bound_raise_type_error():
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x, y):
            return x * y
        f.defjvp(lambda p, t: (f(*p), t[0] * p[1] + p[0] * t[1]))
        for call in (lambda: f(1.), lambda: f(1., z=2.), lambda: f(1., 2., 3.)):
            try:
                call()
            except TypeError as e:
                print(first_sentence(e))

    assert_same(run)


# ---------------------------------------------------------------------------
# Python control flow


def branching_f(jax, jnp):
    @jax.custom_jvp
    def f(x):
        if x > 0:
            return jnp.sin(x)
        else:
            return jnp.cos(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        x, = primals
        x_dot, = tangents
        ans = f(x)
        if x > 0:
            return ans, 2 * x_dot
        else:
            return ans, 3 * x_dot

    return f


def test_control_flow_on_primals_works_under_jvp_and_grad():
    def run(jax, jnp):
        f = branching_f(jax, jnp)
        one = jnp.float32(1.)
        return (f(1.), f(-1.), jax.grad(f)(1.), jax.grad(f)(-1.),
                jax.jvp(f, (one,), (one,)), jax.jvp(f, (-one,), (one,)),
                jax.value_and_grad(f)(-1.), jax.grad(jax.grad(f))(1.))

    out = assert_same(run)
    assert [float(g) for g in out[2:4]] == [2., 3.]


CONCRETIZATION_FAILURES = {
    "jit": lambda jax, f: jax.jit(f)(1.),
    "make_jaxpr": lambda jax, f: jax.make_jaxpr(f)(1.),
    "vmap": lambda jax, f: jax.vmap(f)(jax.numpy.array([1., -1.])),
    "grad_jit": lambda jax, f: jax.grad(jax.jit(f))(1.),
    "jit_grad": lambda jax, f: jax.jit(jax.grad(f))(1.),
    "vmap_grad": lambda jax, f: jax.vmap(jax.grad(f))(jax.numpy.array([1., -1.])),
}


@pytest.mark.parametrize("name", CONCRETIZATION_FAILURES)
def test_control_flow_on_traced_values_fails_with_a_concretization_error(name):
    def run(jax, jnp):
        try:
            CONCRETIZATION_FAILURES[name](jax, branching_f(jax, jnp))
        except jax.errors.ConcretizationTypeError as e:
            return first_sentence(e)

    assert assert_same(run).startswith("TracerBoolConversionError: ")


def test_control_flow_in_the_rule_only():
    """f has no branch, so evaluation, jit and vmap work; the rule's branch fails only
    where the rule runs on traced values."""
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x)

        @f.defjvp
        def f_jvp(primals, tangents):
            x, = primals
            return f(x), (2. if x > 0 else 3.) * tangents[0]

        results = [jax.jit(f)(1.), jax.vmap(f)(jnp.array([1., -1.])), jax.grad(f)(-1.)]
        try:
            jax.grad(jax.jit(f))(1.)
        except jax.errors.ConcretizationTypeError as e:
            print(first_sentence(e))
        return results

    assert_same(run)


def test_jnp_where_instead_of_python_branches_works_everywhere():
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return jnp.where(x > 0, jnp.sin(x), jnp.cos(x))

        @f.defjvp
        def f_jvp(primals, tangents):
            x, = primals
            return f(x), jnp.where(x > 0, 2., 3.) * tangents[0]

        xs = jnp.array([1., -1.])
        return (jax.jit(jax.grad(f))(1.), jax.vmap(jax.grad(f))(xs),
                jax.grad(jax.jit(f))(-1.), jax.vmap(jax.jit(jax.grad(f)))(xs))

    assert_same(run)


# ---------------------------------------------------------------------------
# Pytrees and nondiff_argnums

Point = namedtuple("Point", ["x", "y"])


def polar_f(jax, jnp):
    """A namedtuple in, a dict out; the rule reports the types it receives."""
    @jax.custom_jvp
    def f(p):
        return {"r": jnp.sqrt(p.x ** 2 + p.y ** 2), "xy": p.x * p.y}

    @f.defjvp
    def f_jvp(primals, tangents):
        p, = primals
        t, = tangents
        print("rule got", type(p).__name__, type(t).__name__)
        out = f(p)
        return out, {"r": (p.x * t.x + p.y * t.y) / out["r"],
                     "xy": t.x * p.y + p.x * t.y}

    return f


def test_pytrees_in_and_out():
    def run(jax, jnp):
        f = polar_f(jax, jnp)
        p = Point(jnp.float32(3.), jnp.float32(4.))
        ps = Point(jnp.array([3., 1.]), jnp.array([4., 1.]))
        loss = lambda p: f(p)["r"] + 2. * f(p)["xy"]  # noqa: E731
        return (f(p), jax.jit(f)(p), jax.vmap(f)(ps),
                jax.jvp(f, (p,), (Point(jnp.float32(1.), jnp.float32(0.)),)),
                jax.grad(loss)(p), jax.jit(jax.grad(loss))(p),
                jax.vmap(jax.grad(loss))(ps), jax.grad(jax.grad(lambda x: loss(Point(x, 4.))))(3.))

    out = assert_same(run)
    assert isinstance(out[4], Point) and isinstance(out[0], dict)


def test_nondiff_argnums_passes_the_callable_first_to_the_rule():
    def run(jax, jnp):
        @partial(jax.custom_jvp, nondiff_argnums=(0,))
        def app(g, x):
            return g(x)

        @app.defjvp
        def app_jvp(g, primals, tangents):
            print("rule got", g.__name__, "first, then", len(primals), "primal")
            x, = primals
            y, y_dot = jax.jvp(g, (x,), tangents)
            return y, 2. * y_dot  # twice g's derivative, to show the rule is used

        xs = jnp.array([1., 2.])
        return (app(jnp.sin, 1.), jax.grad(app, 1)(jnp.sin, 1.),
                jax.jit(lambda x: app(jnp.sin, x))(1.),
                jax.vmap(lambda x: app(jnp.sin, x))(xs),
                jax.vmap(jax.grad(lambda x: app(jnp.sin, x)))(xs),
                jax.jit(jax.grad(lambda x: app(jnp.sin, x)))(1.),
                jax.grad(jax.grad(app, 1), 1)(jnp.sin, 1.))

    out = assert_same(run)
    np.testing.assert_allclose(float(out[1]), 2 * np.cos(1.), rtol=1e-6)


def test_nondiff_argnums_not_in_first_position():
    def run(jax, jnp):
        @partial(jax.custom_jvp, nondiff_argnums=(1,))
        def power(x, n):
            return x ** n

        @power.defjvp
        def power_jvp(n, primals, tangents):
            print("rule got n =", n)
            x, = primals
            return power(x, n), n * x ** (n - 1) * tangents[0]

        return (power(2., 3), jax.grad(power)(2., 3), jax.grad(jax.grad(power))(2., 3),
                jax.jit(lambda x: power(x, 3))(2.))

    assert_same(run)


# ---------------------------------------------------------------------------
# Errors


BAD_RULES = {
    "not_a_pair": lambda f, jnp: lambda p, t: f(p[0]),
    "three_items": lambda f, jnp: lambda p, t: (f(p[0]), t[0], t[0]),
    "structures_differ": lambda f, jnp: lambda p, t: ((f(p[0]),), jnp.cos(p[0]) * t[0]),
    "tangent_shape": lambda f, jnp: lambda p, t: (f(p[0]), t[0] * jnp.ones(2)),
    "tangent_dtype": lambda f, jnp: lambda p, t: (f(p[0]), jnp.int32(1)),
}
WHERE_THE_RULE_RUNS = {
    "jvp": lambda jax, f: jax.jvp(f, (1.,), (1.,)),
    "grad": lambda jax, f: jax.grad(f)(1.),
    "jit_grad": lambda jax, f: jax.jit(jax.grad(f))(1.),
    "vmap_grad": lambda jax, f: jax.vmap(jax.grad(f))(jax.numpy.ones(2)),
}


@pytest.mark.parametrize("where", WHERE_THE_RULE_RUNS)
@pytest.mark.parametrize("rule", BAD_RULES)
def test_bad_rules_raise_type_error_where_the_rule_runs(rule, where):
    def run(jax, jnp):
        f = _sin_with_rule(jax, jnp, BAD_RULES[rule])
        # Evaluation, jit and vmap never run the rule: no error there.
        f(1.), jax.jit(f)(1.), jax.vmap(f)(jnp.ones(2))
        try:
            WHERE_THE_RULE_RUNS[where](jax, f)
        except TypeError as e:
            # What follows "but got" shows values and tracers, printed differently.
            return first_sentence(e).split(", but got")[0]

    assert assert_same(run).startswith("TypeError: Custom JVP rule")


def test_no_rule_is_an_attribute_error_at_call_time():
    def run(jax, jnp):
        f = jax.custom_jvp(jnp.sin)
        for call in (lambda: f(1.), lambda: jax.jit(f)(1.), lambda: jax.grad(f)(1.)):
            try:
                call()
            except AttributeError as e:
                print(first_sentence(e))

    assert_same(run)


def test_defjvps_with_nondiff_argnums_is_a_type_error():
    def run(jax, jnp):
        app = jax.custom_jvp(lambda g, x: g(x), nondiff_argnums=(0,))
        try:
            app.defjvps(lambda t, ans, x: t)
        except TypeError as e:
            return first_sentence(e)

    assert assert_same(run) == "TypeError: Can't use ``defjvps`` with ``nondiff_argnums``."


# (x_dot * x_dot is left out: JAX 0.10.2 fails transposing it with an internal
# AssertionError rather than NotImplementedError.)
@pytest.mark.parametrize("tangent", ["x_dot ** 2", "jnp.sin(x_dot)", "jnp.exp(x_dot)"])
def test_a_nonlinear_rule_works_under_jvp_and_fails_to_transpose(tangent):
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x)

        @f.defjvp
        def f_jvp(primals, tangents):
            x, = primals
            x_dot, = tangents
            return f(x), jnp.cos(x) * eval(tangent)

        out = jax.jvp(f, (jnp.float32(3.),), (jnp.float32(2.),))
        try:
            jax.grad(f)(3.)
        except NotImplementedError as e:
            print(first_sentence(e))
        return out

    assert_same(run)


def closing_over(jax, jnp, transform):
    """A custom_jvp function and rule that use ``y`` without taking it as an argument."""
    def g(y):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x) * y

        @f.defjvp
        def f_jvp(primals, tangents):
            x, = primals
            return f(x), jnp.cos(x) * y * tangents[0]

        return f(2.)

    try:
        return transform(jax, g)
    except jax.errors.UnexpectedTracerError as e:
        return first_sentence(e)


def test_closing_over_a_differentiated_value_is_an_unexpected_tracer():
    def run(jax, jnp):
        return (closing_over(jax, jnp, lambda jax, g: g(3.)),
                closing_over(jax, jnp, lambda jax, g: jax.grad(g)(3.)))

    _, error = assert_same(run)
    assert error == "UnexpectedTracerError: Encountered an unexpected tracer"


# ---------------------------------------------------------------------------
# Known differences from JAX

def test_keyword_only_parameter_with_a_default():
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x, *, scale=3.):
            return x * scale
        f.defjvp(lambda p, t: (f(*p), 3. * t[0]))
        return f(1.), jax.grad(f)(1.)

    assert_same(run)


def test_rule_primal_output_must_match_the_function_output():
    def run(jax, jnp):
        f = _sin_with_rule(jax, jnp, lambda f, jnp: lambda p, t: (jnp.ones(2), jnp.ones(2)))
        try:
            return jax.jvp(jax.jit(f), (1.,), (1.,))
        except TypeError as e:
            return first_sentence(e)

    assert_same(run)


@pytest.mark.parametrize("decorator", ["custom_jvp", "custom_vjp"])
def test_a_keyword_only_argument_passed_by_the_caller_is_refused(decorator):
    def run(jax, jnp):
        def f(x, *, scale=3.):
            return x * scale
        f = getattr(jax, decorator)(f)
        if decorator == "custom_jvp":
            f.defjvp(lambda p, t: (f(*p), 3. * t[0]))
        else:
            f.defvjp(lambda x: (f(x), None), lambda _, g: (3. * g,))
        try:
            f(1., scale=2.)
        except TypeError as e:
            return first_sentence(e), f(2.), jax.grad(f)(2.)

    assert_same(run)


def test_tangent_type_message_matches_jax_exactly():
    def run(jax, jnp):
        f = _sin_with_rule(jax, jnp, BAD_RULES["tangent_shape"])
        try:
            jax.jvp(f, (1.,), (1.,))
        except TypeError as e:
            return str(e)

    assert_same(run)


def test_jvp_returns_the_rules_python_scalar_tangent_as_is():
    def run(jax, jnp):
        f = _sin_with_rule(jax, jnp, SLOPE_2)
        return jax.jvp(f, (3.,), (1.,))

    assert_same(run)


@pytest.mark.parametrize("transform", ["jit", "vmap"])
def test_closing_over_a_value_of_jit_or_vmap(transform):
    transforms = {"jit": lambda jax, g: jax.jit(g)(3.),
                  "vmap": lambda jax, g: jax.vmap(g)(jax.numpy.ones(2))}
    assert_same(lambda jax, jnp: closing_over(jax, jnp, transforms[transform]))


def test_numpy_inputs_of_wide_dtypes_are_narrowed_as_jax_binds_them():
    """A float64 NumPy input reaches the function and its rules as float32, so their
    NumPy arithmetic gives float32 too, in custom_jvp and custom_vjp alike."""
    def square(jax, jnp):
        f = jax.custom_jvp(lambda a: a * a * 1.5)
        f.defjvp(lambda p, t: (f(p[0]), 3. * p[0] * t[0]))
        g = jax.custom_vjp(lambda a: a * a * 1.5)
        g.defvjp(lambda a: (g(a), a), lambda a, ct: (3. * a * ct,))
        return f, g

    x64 = np.array([0.5, np.nan])
    assert_same(lambda jax, jnp: [h(x64) for h in square(jax, jnp)])
    assert_same(lambda jax, jnp: [jax.grad(lambda x, y: jnp.sum(x * h(y)))(1., x64)
                                  for h in square(jax, jnp)])
