"""Random programs under random stacks of transformations, minijax against JAX.

Hypothesis draws a small expression over two arrays x and y (elementwise unary and
binary functions, reductions, constants) and a stack of up to three
transformations (jit, grad of the sum, vmap, jvp); minijax and JAX must agree.
Inputs lie on a grid of step 0.05 in [-2, 2], so zeros and ties (x == y) come up
often, and with them JAX's conventions at kinks (abs at 0, maximum at a tie).
Functions are written so their domains are never left (log1p(a * a) rather
than log(a)); an example is only skipped when minijax and JAX disagree and JAX
itself produced nan or inf, where float rounding decides which non-finite value
comes out.

The runs are derandomized: CI always draws the same examples.

The last tests break a rule inside minijax on purpose and check that the
comparison notices.
"""

from __future__ import annotations

import importlib
import itertools

import jax
import jax.numpy as jjnp
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

import minijax
import parity

UNARY = {
    "sin": lambda jnp, a: jnp.sin(a),
    "cos": lambda jnp, a: jnp.cos(a),
    "tanh": lambda jnp, a: jnp.tanh(a),
    "exp": lambda jnp, a: jnp.exp(a),
    "expm1": lambda jnp, a: jnp.expm1(a),
    "log1p_square": lambda jnp, a: jnp.log1p(a * a),
    "log_abs_plus_1": lambda jnp, a: jnp.log(jnp.abs(a) + 1.0),
    "sqrt_1_plus_square": lambda jnp, a: jnp.sqrt(1.0 + a ** 2),
    "tan_of_sin": lambda jnp, a: jnp.tan(jnp.sin(a)),
    "abs": lambda jnp, a: jnp.abs(a),
    "sign_times": lambda jnp, a: jnp.sign(a) * a,
    "negative": lambda jnp, a: -a,
    "cube": lambda jnp, a: a ** 3,
    "scale": lambda jnp, a: 2.5 * a,
    "clip": lambda jnp, a: jnp.clip(a, -1.0, 1.0),
    "relu": lambda jnp, a: jnp.maximum(a, 0.0),
    "sum": lambda jnp, a: jnp.sum(a),
    "mean": lambda jnp, a: jnp.mean(a),
    "max": lambda jnp, a: jnp.max(a),
}
BINARY = {
    "add": lambda jnp, a, b: a + b,
    "subtract": lambda jnp, a, b: a - b,
    "multiply": lambda jnp, a, b: a * b,
    "divide": lambda jnp, a, b: a / (1.0 + b * b),
    "maximum": lambda jnp, a, b: jnp.maximum(a, b),
    "minimum": lambda jnp, a, b: jnp.minimum(a, b),
    "power": lambda jnp, a, b: (jnp.abs(a) + 0.5) ** jnp.tanh(b),
    "where": lambda jnp, a, b: jnp.where(a > b, a, b * 2.0),
    "dot": lambda jnp, a, b: jnp.dot(a, b),
}
VARIABLES = ["x", "y"]


def evaluate(jnp, expr, env):
    if isinstance(expr, str):
        return env[expr]
    if isinstance(expr, float):
        return expr
    op, *args = expr
    values = [evaluate(jnp, a, env) for a in args]
    return (UNARY if len(values) == 1 else BINARY)[op](jnp, *values)


def uses_an_input(expr) -> bool:
    if isinstance(expr, str):
        return True
    return isinstance(expr, tuple) and any(uses_an_input(a) for a in expr[1:])


def extend(children):
    return st.one_of(st.tuples(st.sampled_from(sorted(UNARY)), children),
                     st.tuples(st.sampled_from(sorted(BINARY)), children, children))


EXPRESSIONS = st.recursive(st.sampled_from([*VARIABLES, 0.5, -1.5, 2.0]), extend,
                           max_leaves=8).filter(uses_an_input)
# All 85 stacks of at most three, drawn evenly (st.lists would favour short ones).
STACKS = st.sampled_from([list(stack) for depth in range(4)
                          for stack in itertools.product(["jit", "grad", "vmap", "jvp"],
                                                         repeat=depth)])


def transform(jax, jnp, name, f):
    """Each transformation turns f(x, y) into another function of (x, y)."""
    if name == "jit":
        return jax.jit(f)
    if name == "vmap":
        return jax.vmap(f)
    if name == "grad":
        def gradient(x, y):
            gx, gy = jax.grad(lambda x, y: jnp.sum(f(x, y)), argnums=(0, 1))(x, y)
            return gx + 2.0 * gy
        return gradient
    if name == "jvp":
        def forward(x, y):
            out, tangent = jax.jvp(f, (x, y), (jnp.cos(x), jnp.ones_like(y) * 0.5))
            return out + tangent
        return forward
    raise ValueError(name)


def program(expr, stack, x, y):
    """The test's program, as a function of the library: stack[0] is outermost."""
    def run(jax, jnp):
        f = lambda x, y: evaluate(jnp, expr, {"x": x, "y": y})  # noqa: E731
        for name in reversed(stack):
            f = transform(jax, jnp, name, f)
        return f(x, y)
    return run


def check(expr, stack, x, y):
    run = program(expr, stack, x, y)
    try:
        parity.assert_same(run)
    except parity.ParityError:
        real = run(jax, jjnp)
        if not all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(real)):
            reject()  # JAX's own result is not finite: rounding decides which inf or nan
        raise


GRID = st.integers(-40, 40).map(lambda k: k / 20)


def check_a_random_program(expr, stack, data):
    shape = (2,) * stack.count("vmap") + (3,)
    size = int(np.prod(shape))
    x, y = (np.array(data.draw(st.lists(GRID, min_size=size, max_size=size)),
                     np.float32).reshape(shape) for _ in range(2))
    check(expr, stack, x, y)


def random_programs(**extra_settings):
    """The property test: the same 100 programs every time."""
    return settings(max_examples=100, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                    **extra_settings)(
        given(expr=EXPRESSIONS, stack=STACKS, data=st.data())(check_a_random_program))


test_random_programs_under_random_transformations = random_programs()


# ---------------------------------------------------------------------------
# A wrong rule makes the comparison fail.

X = np.array([0.3, -1.2, 2.5], np.float32)
Y = np.array([1.1, 0.4, -0.7], np.float32)


def wrong_sin_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return minijax.lax.sin(x), minijax.lax.mul(t, minijax.lax.sin(x))  # sin' is not sin


def wrong_neg_transpose(ct, x):
    return [ct]  # the transpose of negation is negation


def wrong_reduce_sum_batching(axis_size, vals, dims, *, axes):
    (x,), _ = vals, dims
    return minijax.lax.reduce_sum(x, tuple(range(len(x.shape)))), None  # sums the batch too


def module(name):
    return importlib.import_module(name)


@pytest.mark.parametrize("table, primitive, wrong, expr, stack", [
    ("minijax.ad:primitive_jvps", "sin_p", wrong_sin_jvp, ("sin", "x"), ["grad"]),
    ("minijax.ad:primitive_jvps", "sin_p", wrong_sin_jvp, ("sin", "x"), ["jvp"]),
    ("minijax.ad:primitive_jvps", "sin_p", wrong_sin_jvp, ("multiply", ("sin", "x"), "y"),
     ["vmap", "jit", "grad"]),
    ("minijax.ad:primitive_transposes", "neg_p", wrong_neg_transpose, ("negative", "x"), ["grad"]),
    ("minijax.batching:primitive_batchers", "reduce_sum_p", wrong_reduce_sum_batching, ("sum", "x"), ["vmap"]),
])
def test_a_wrong_rule_is_caught(monkeypatch, table, primitive, wrong, expr, stack):
    shape = (2,) * stack.count("vmap") + (3,)
    x, y = np.resize(X, shape), np.resize(Y, shape)
    check(expr, stack, x, y)  # the right rule agrees with JAX
    module_name, attribute = table.split(":")
    rules = getattr(module(module_name), attribute)
    monkeypatch.setitem(rules, getattr(minijax.lax, primitive), wrong)
    with pytest.raises(parity.ParityError):
        parity.assert_same(program(expr, stack, x, y))


def test_the_direct_check_of_the_brief_catches_a_wrong_sin_rule(monkeypatch):
    example = lambda jax, jnp: jax.grad(jnp.sin)(1.0)  # noqa: E731
    parity.assert_same(example)
    monkeypatch.setitem(module("minijax.ad").primitive_jvps, minijax.lax.sin_p, wrong_sin_jvp)
    with pytest.raises(parity.ParityError, match="result"):
        parity.assert_same(example)
    monkeypatch.undo()
    parity.assert_same(example)  # and the real rule is back


def test_hypothesis_finds_a_wrong_rule(monkeypatch):
    """The property test itself fails when a rule is wrong (here: tanh's derivative)."""
    def wrong_tanh_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        y = minijax.lax.tanh(x)
        return y, minijax.lax.mul(t, minijax.lax.sub(minijax.lax.full_like(y, 1), y))

    monkeypatch.setitem(module("minijax.ad").primitive_jvps, minijax.lax.tanh_p, wrong_tanh_jvp)
    # The same programs; the first failure is enough, so Hypothesis does not shrink it.
    with pytest.raises(parity.ParityError):
        random_programs(phases=[Phase.generate])()
