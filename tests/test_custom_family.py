"""The rest of JAX's custom-rule family, each checked on minijax beside JAX.

``closure_convert``; ``custom_gradient``; the symbolic-zero interface of rules
(``defjvp(..., symbolic_zeros=True)``, ``defvjp(..., symbolic_zeros=True)``,
``SymbolicZero``, ``CustomVJPPrimal``, ``zero_from_primal``); ``nondiff_argnames``;
the function ``vjp`` returns as a pytree; the bwd rule's cotangent checks;
``minijax.tree``, ``jnp.ndim``, and ``float0`` tangents with ``grad(allow_int=True)``.
Each under ``jit``, ``vmap``, ``grad`` and ``jvp`` in both orders, with the errors.
Every test runs the same function on both libraries with ``parity.assert_same``.
"""
from functools import partial

import numpy as np
import pytest

from parity import assert_same

V = np.array([0.5, -1.0, 2.0], np.float32)
N = np.array([1, 2, 3], np.int32)


def _error(thunk):
    """The type and message of what ``thunk`` raises, to compare them with JAX's."""
    try:
        thunk()
    except Exception as e:  # compared across libraries
        return type(e).__name__, str(e)
    return None


def _both(transform):
    """assert_same of ``transform(jax, jnp)``, returning minijax's result."""
    return assert_same(transform)


# ---------------------------------------------------------------------------
# closure_convert


def _hoisted(jax, jnp, transform):
    """How many closed-over values closure_convert hoists inside ``transform``, and
    the converted function's value."""
    counts = []
    w = jnp.asarray(V)  # concrete: stays in the closure

    def f(a, n):
        g, consts = jax.closure_convert(lambda x: jnp.sum(x * a * w) + n, 1.)
        counts.append(len(consts))
        return g(2., *consts)

    return transform(f), counts


CLOSURE_TRANSFORMS = {
    "eval": lambda jax, jnp, f: f(2., 3),
    "grad": lambda jax, jnp, f: jax.grad(f)(2., 3),
    "jvp": lambda jax, jnp, f: jax.jvp(lambda a: f(a, 3), (2.,), (1.,)),
    "linearize": lambda jax, jnp, f: jax.linearize(lambda a: f(a, 3), 2.)[1](1.),
    "jit": lambda jax, jnp, f: jax.jit(f)(2., 3),
    "vmap": lambda jax, jnp, f: jax.vmap(f)(jnp.ones(2), jnp.ones(2, jnp.int32)),
    "vmap of grad": lambda jax, jnp, f: jax.vmap(jax.grad(f))(jnp.ones(2), N[:2]),
    "grad of vmap": lambda jax, jnp, f: jax.grad(
        lambda a: jnp.sum(jax.vmap(f, (None, 0))(a, N[:2])))(2.),
    "jit of grad": lambda jax, jnp, f: jax.jit(jax.grad(f))(2., 3),
    "grad of jit": lambda jax, jnp, f: jax.grad(jax.jit(f))(2., 3),
}


@pytest.mark.parametrize("name", CLOSURE_TRANSFORMS)
def test_closure_convert_hoists_what_may_be_differentiated(name):
    """Tracers of differentiation and staged floats are hoisted; concrete values,
    integers and values batched only by vmap stay in the closure."""
    _both(lambda jax, jnp: _hoisted(jax, jnp, partial(CLOSURE_TRANSFORMS[name], jax, jnp)))


def _fixed_point(jax, jnp):
    """The documentation's pattern: a custom_vjp solver whose function argument
    closes over differentiated values, which closure_convert passes as arguments."""
    @partial(jax.custom_vjp, nondiff_argnums=(0,))
    def solve(g, x0, *consts):
        x = x0
        for _ in range(30):
            x = g(x, *consts)
        return x

    def solve_fwd(g, x0, *consts):
        x = solve(g, x0, *consts)
        return x, (x, consts)

    def solve_bwd(g, res, x_bar):
        x, consts = res
        _, vjp_x = jax.vjp(lambda x: g(x, *consts), x)
        _, vjp_consts = jax.vjp(lambda *c: g(x, *c), *consts)
        w = x_bar
        for _ in range(30):  # w = x_bar + w dg/dx, solved by iteration
            w = x_bar + vjp_x(w)[0]
        return (jnp.zeros_like(x), *vjp_consts(w))

    solve.defvjp(solve_fwd, solve_bwd)

    def fixed_point(f, x0):
        g, consts = jax.closure_convert(f, x0)
        return solve(g, x0, *consts)

    return lambda a: fixed_point(lambda x: 0.5 * jnp.cos(x) * a, 1.)


@pytest.mark.parametrize("transform", [
    lambda jax, f: jax.grad(f)(1.),
    lambda jax, f: jax.jit(jax.grad(f))(1.),
    lambda jax, f: jax.grad(jax.jit(f))(1.),
    lambda jax, f: jax.vmap(jax.grad(f))(jax.numpy.asarray(V)),
    lambda jax, f: jax.grad(lambda a: jax.numpy.sum(jax.vmap(f)(a)))(jax.numpy.asarray(V)),
    lambda jax, f: jax.vjp(f, 1.)[1](1.),
], ids=["grad", "jit of grad", "grad of jit", "vmap of grad", "grad of vmap", "vjp"])
def test_closure_convert_lifts_the_closure_limitation_of_custom_vjp(transform):
    _both(lambda jax, jnp: transform(jax, _fixed_point(jax, jnp)))


def test_without_closure_convert_the_solver_fails():
    def run(jax, jnp):
        @partial(jax.custom_vjp, nondiff_argnums=(0,))
        def solve(f, x0):
            return f(x0)
        solve.defvjp(lambda f, x0: (solve(f, x0), None), lambda f, res, g: (g,))
        return _error(lambda: jax.grad(lambda a: solve(lambda x: x * a, 1.))(2.))[0]
    assert _both(run) == "UnexpectedTracerError"


def test_closure_convert_checks_the_structure_of_the_arguments():
    def run(jax, jnp):
        g, _ = jax.closure_convert(lambda x, y: x * y[0], 1., (2., 3.))
        return _error(lambda: g(1., 2.))
    assert _both(run)[0] == "TypeError"


def test_closure_convert_keeps_output_structure():
    _both(lambda jax, jnp: jax.closure_convert(lambda p: {"s": p[0] + p[1], "d": [p[0]]},
                                               (1., 2.))[0]((3., 4.)))


# ---------------------------------------------------------------------------
# custom_gradient


def _sin_times_two(jax, jnp):
    @jax.custom_gradient
    def f(x):
        y = jnp.sin(x)  # closed over by the VJP: a residual
        return 2. * y, lambda g: (3. * g * jnp.cos(x) * y,)
    return f


def _product(jax, jnp):
    @jax.custom_gradient
    def f(x, y):
        return x * y, lambda g: (g * y, g * x)
    return f


CUSTOM_GRADIENT = {
    "value": lambda jax, jnp: _sin_times_two(jax, jnp)(1.),
    "grad": lambda jax, jnp: jax.grad(_sin_times_two(jax, jnp))(1.),
    "two arguments": lambda jax, jnp: jax.grad(_product(jax, jnp), (0, 1))(3., 4.),
    "vjp": lambda jax, jnp: jax.vjp(_sin_times_two(jax, jnp), jnp.asarray(V))[1](
        jnp.ones(3)),
    "jit of grad": lambda jax, jnp: jax.jit(jax.grad(_sin_times_two(jax, jnp)))(1.),
    "grad of jit": lambda jax, jnp: jax.grad(jax.jit(_sin_times_two(jax, jnp)))(1.),
    "vmap of grad": lambda jax, jnp: jax.vmap(jax.grad(_sin_times_two(jax, jnp)))(V),
    "grad of vmap": lambda jax, jnp: jax.grad(
        lambda x: jnp.sum(jax.vmap(_sin_times_two(jax, jnp))(x)))(V),
    "grad of grad": lambda jax, jnp: jax.grad(jax.grad(_sin_times_two(jax, jnp)))(1.),
    "jaxpr of grad": lambda jax, jnp: jax.make_jaxpr(jax.grad(_sin_times_two(jax, jnp)))(1.),
    "name": lambda jax, jnp: _sin_times_two(jax, jnp).__name__,
}


@pytest.mark.parametrize("name", CUSTOM_GRADIENT)
def test_custom_gradient(name):
    _both(CUSTOM_GRADIENT[name])


def test_custom_gradient_one_argument_may_return_a_bare_cotangent():
    def run(jax, jnp):
        @jax.custom_gradient
        def f(x):
            return x ** 2, lambda g: g * 10.
        return jax.grad(f)(3.)
    _both(run)


def test_custom_gradient_of_a_pytree():
    def run(jax, jnp):
        @jax.custom_gradient
        def f(p):
            return p["a"] * p["b"], lambda g: ({"a": g * p["b"], "b": 2. * g * p["a"]},)
        return jax.grad(f)({"a": 2., "b": 3.})
    _both(run)


def test_custom_gradient_refuses_forward_mode_but_its_gradient_has_one():
    """A custom_gradient function is a custom_vjp function: no jvp.  Its gradient
    is the VJP function staged as a jaxpr, which jvp differentiates."""
    def run(jax, jnp):
        f = _sin_times_two(jax, jnp)
        return _error(lambda: jax.jvp(f, (1.,), (1.,))), jax.jvp(jax.grad(f), (1.,), (1.,))
    assert _both(run)[0][0] == "TypeError"


def test_custom_gradient_vjp_cannot_branch_on_its_cotangent():
    def run(jax, jnp):
        @jax.custom_gradient
        def f(x):
            return x, lambda g: (g if g > 0 else -g,)
        return _error(lambda: jax.grad(f)(1.))[0]
    assert _both(run) == "TracerBoolConversionError"


# ---------------------------------------------------------------------------
# Symbolic zeros in custom_jvp rules


def _jvp_seeing_zeros(jax, jnp, log):
    """sin(x) * y whose rule notes which tangents are symbolic zeros."""
    symbolic_zero = jax.custom_derivatives.SymbolicZero

    @jax.custom_jvp
    def f(x, y):
        return jnp.sin(x) * y

    def f_jvp(primals, tangents):
        (x, y), (x_dot, y_dot) = primals, tangents
        log.append([type(t) is symbolic_zero for t in tangents])
        out, out_dot = f(x, y), jnp.zeros_like(jnp.sin(x) * y)
        if type(x_dot) is not symbolic_zero:
            out_dot = out_dot + jnp.cos(x) * x_dot * y
        if type(y_dot) is not symbolic_zero:
            out_dot = out_dot + jnp.sin(x) * y_dot
        return out, out_dot

    f.defjvp(f_jvp, symbolic_zeros=True)
    return f


SYMBOLIC_JVP = {
    "jvp in x": lambda jax, jnp, f: jax.jvp(lambda x: f(x, 2.), (1.,), (1.,)),
    "jvp in both": lambda jax, jnp, f: jax.jvp(f, (1., 2.), (1., 0.)),
    "grad in y": lambda jax, jnp, f: jax.grad(f, 1)(1., 2.),
    "grad in both": lambda jax, jnp, f: jax.grad(f, (0, 1))(1., 2.),
    "jit of grad": lambda jax, jnp, f: jax.jit(jax.grad(f))(1., 2.),
    "grad of jit": lambda jax, jnp, f: jax.grad(jax.jit(f))(1., 2.),
    "vmap of grad": lambda jax, jnp, f: jax.vmap(jax.grad(f))(V, V),
    "grad of vmap": lambda jax, jnp, f: jax.grad(
        lambda x: jnp.sum(jax.vmap(f, (0, None))(x, 2.)))(V),
    "jvp of vmap": lambda jax, jnp, f: jax.jvp(
        lambda x: jax.vmap(f, (0, None))(x, 2.), (V,), (V,)),
    "vmap of jvp": lambda jax, jnp, f: jax.vmap(
        lambda x: jax.jvp(lambda x: f(x, 2.), (x,), (1.,)))(V),
    "grad of grad": lambda jax, jnp, f: jax.grad(jax.grad(f))(1., 2.),
    "jvp of grad": lambda jax, jnp, f: jax.jvp(lambda x: jax.grad(f)(x, 2.), (1.,), (1.,)),
    "grad of jvp": lambda jax, jnp, f: jax.grad(
        lambda x: jax.jvp(lambda y: f(x, y), (2.,), (1.,))[1])(1.),
    "jaxpr": lambda jax, jnp, f: jax.make_jaxpr(jax.grad(f))(1., 2.),
}


@pytest.mark.parametrize("name", SYMBOLIC_JVP)
def test_custom_jvp_rule_sees_symbolic_zeros(name):
    """The rule gets a SymbolicZero for each input that carries no tangent, in the
    same places as in JAX, and its result is the same."""
    def run(jax, jnp):
        log = []
        return SYMBOLIC_JVP[name](jax, jnp, _jvp_seeing_zeros(jax, jnp, log)), log
    _both(run)


def test_symbolic_zero_answers_for_its_type():
    def run(jax, jnp):
        seen = []

        @jax.custom_jvp
        def f(x, n):
            return x * n

        @partial(f.defjvp, symbolic_zeros=True)
        def f_jvp(primals, tangents):
            seen.extend((repr(t), t.shape, str(t.dtype), t.ndim) for t in tangents[1:])
            return f(*primals), tangents[0] * primals[1]

        return jax.jvp(lambda x: f(x, jnp.asarray(N)), (V,), (V,)), seen
    _both(run)


def test_custom_jvp_rule_may_return_symbolic_zeros():
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x), jnp.floor(x)

        @partial(f.defjvp, symbolic_zeros=True)
        def f_jvp(primals, tangents):
            (x,), (x_dot,) = primals, tangents
            zero = jax.custom_derivatives.SymbolicZero.from_primal_value(x)
            return f(x), (jnp.cos(x) * x_dot, zero)

        return (jax.jvp(f, (V,), (V,)), jax.grad(lambda x: jnp.sum(f(x)[0] + f(x)[1]))(V),
                jax.jvp(jax.vmap(f), (V,), (V,)))
    _both(run)


def test_without_symbolic_zeros_the_rule_gets_zeros_and_float0():
    def run(jax, jnp):
        seen = []

        @jax.custom_jvp
        def f(x, y, n):
            return x * y * n

        @f.defjvp
        def f_jvp(primals, tangents):
            seen.extend((t.dtype.name, np.shape(t)) for t in tangents)
            x, y, n = primals
            return f(x, y, n), tangents[0] * y * n + x * tangents[1] * n

        return jax.grad(f)(1., 2., 3), seen
    _both(run)


@pytest.mark.parametrize("outputs", [1, 2])
def test_a_rule_must_give_float0_tangents_to_integer_outputs(outputs):
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return (x, jnp.round(x).astype(jnp.int32))[-outputs:]
        f.defjvp(lambda p, t: (f(*p), (t[0], jnp.zeros((), jnp.int32))[-outputs:]))
        return _error(lambda: jax.jvp(f, (1.,), (1.,)))
    assert _both(run)[0] == "TypeError"


def test_defjvps_gives_integer_outputs_zero_tangents():
    def run(jax, jnp):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x), jnp.round(x).astype(jnp.int32)
        f.defjvps(lambda t, ans, x: (jnp.cos(x) * t, jnp.zeros((), jax.dtypes.float0)))
        return jax.jvp(f, (1.,), (1.,)), jax.grad(lambda x: f(x)[0])(1.)
    _both(run)


# ---------------------------------------------------------------------------
# Symbolic zeros in custom_vjp rules


def _vjp_seeing_zeros(jax, jnp, log, bwd_zero=None):
    """(sin(x) * y, 2x), whose fwd notes which inputs are perturbed and whose bwd
    notes which output cotangents are symbolic zeros."""
    symbolic_zero = jax.custom_derivatives.SymbolicZero

    @jax.custom_vjp
    def f(x, y):
        return jnp.sin(x) * y, 2. * x

    def f_fwd(x, y):
        log.append(("fwd", type(x).__name__, x.perturbed, y.perturbed))
        x, y = x.value, y.value
        return f(x, y), (jnp.cos(x), jnp.sin(x), y)

    def f_bwd(res, cts):
        (cos_x, sin_x, y), (a_bar, b_bar) = res, cts
        log.append(("bwd", type(a_bar) is symbolic_zero, type(b_bar) is symbolic_zero))
        x_bar = 0.
        if type(a_bar) is not symbolic_zero:
            x_bar = x_bar + cos_x * a_bar * y
        if type(b_bar) is not symbolic_zero:
            x_bar = x_bar + 2. * b_bar
        if type(a_bar) is symbolic_zero:
            return x_bar, (None if bwd_zero is None else bwd_zero(a_bar))
        return x_bar, sin_x * a_bar

    f.defvjp(f_fwd, f_bwd, symbolic_zeros=True)
    return f


SYMBOLIC_VJP = {
    "grad of the first output": lambda jax, jnp, f: jax.grad(lambda x: f(x, 2.)[0])(1.),
    "grad of the second output": lambda jax, jnp, f: jax.grad(lambda x: f(x, 2.)[1])(1.),
    "grad in y": lambda jax, jnp, f: jax.grad(lambda y: f(1., y)[0])(2.),
    "grad in both": lambda jax, jnp, f: jax.grad(
        lambda x, y: f(x, y)[0] + f(x, y)[1], (0, 1))(1., 2.),
    "vjp": lambda jax, jnp, f: jax.vjp(f, 1., 2.)[1]((1., 0.)),
    "jit of grad": lambda jax, jnp, f: jax.jit(jax.grad(lambda x: f(x, 2.)[1]))(1.),
    "grad of jit": lambda jax, jnp, f: jax.grad(jax.jit(lambda x: f(x, 2.)[1]))(1.),
    "vmap of grad": lambda jax, jnp, f: jax.vmap(jax.grad(lambda x: f(x, 2.)[1]))(V),
    "grad of vmap": lambda jax, jnp, f: jax.grad(
        lambda x: jnp.sum(jax.vmap(f, (0, None))(x, 2.)[0]))(V),
    "grad of vmap, zero cotangent": lambda jax, jnp, f: jax.grad(
        lambda x: jnp.sum(jax.vmap(f, (0, None))(x, 2.)[1]))(V),
    "grad of grad": lambda jax, jnp, f: jax.grad(jax.grad(lambda x: f(x, 2.)[0]))(1.),
}


@pytest.mark.parametrize("name", SYMBOLIC_VJP)
def test_custom_vjp_rules_see_perturbed_inputs_and_symbolic_zeros(name):
    def run(jax, jnp):
        log = []
        return SYMBOLIC_VJP[name](jax, jnp, _vjp_seeing_zeros(jax, jnp, log)), log
    _both(run)


def test_bwd_may_return_a_symbolic_zero():
    def run(jax, jnp):
        log = []
        f = _vjp_seeing_zeros(jax, jnp, log, bwd_zero=lambda z: z.__class__(z.aval))
        return jax.grad(lambda x, y: f(x, y)[1], (0, 1))(1., 2.), log
    _both(run)


def test_bwd_symbolic_zero_of_the_wrong_type_is_an_error():
    def run(jax, jnp):
        log = []
        wrong = jax.custom_derivatives.zero_from_primal(jnp.ones(3), symbolic_zeros=True)
        f = _vjp_seeing_zeros(jax, jnp, log, bwd_zero=lambda z: wrong)
        return _error(lambda: jax.grad(lambda x, y: f(x, y)[1], (0, 1))(1., 2.))
    assert _both(run)[0] == "ValueError"


def test_custom_vjp_primal_tree_values():
    def run(jax, jnp):
        cd = jax.custom_derivatives
        tree = {"a": cd.CustomVJPPrimal(1., True), "b": [cd.CustomVJPPrimal(2., False)]}
        return cd.custom_vjp_primal_tree_values(tree), _error(
            lambda: cd.custom_vjp_primal_tree_values([1.]))
    _both(run)


def test_zero_from_primal():
    def run(jax, jnp):
        cd = jax.custom_derivatives
        tree = {"x": jnp.asarray(V), "n": 3, "b": True}
        zeros = cd.zero_from_primal(tree)
        symbolic = cd.zero_from_primal(tree, symbolic_zeros=True)
        return zeros, jax.tree.map(lambda z: (repr(z), z.shape, str(z.dtype)), symbolic)
    _both(run)


# ---------------------------------------------------------------------------
# nondiff_argnames


def _power(jax, jnp):
    @partial(jax.custom_jvp, nondiff_argnames=("n",))
    def power(x, n):
        return x ** n

    @power.defjvp
    def power_jvp(n, primals, tangents):
        (x,), (x_dot,) = primals, tangents
        return power(x, n), n * x ** (n - 1) * x_dot

    return power


def _scaled(jax, jnp):
    @partial(jax.custom_vjp, nondiff_argnames=("g", "not_a_parameter"), nondiff_argnums=(2,))
    def scaled(g, x, k):
        return g(x) * k

    scaled.defvjp(lambda g, x, k: (scaled(g, x, k), x),
                  lambda g, k, x, y_bar: (2. * k * y_bar,))
    return scaled


NONDIFF_ARGNAMES = {
    "custom_jvp positions": lambda jax, jnp: _power(jax, jnp).nondiff_argnums,
    "custom_jvp grad": lambda jax, jnp: jax.grad(_power(jax, jnp))(2., 3),
    "custom_jvp by keyword": lambda jax, jnp: jax.grad(lambda x: _power(jax, jnp)(x, n=3))(2.),
    "custom_jvp jit of grad": lambda jax, jnp: jax.jit(
        jax.grad(_power(jax, jnp)), static_argnums=1)(2., 3),
    "custom_jvp vmap": lambda jax, jnp: jax.vmap(
        jax.grad(_power(jax, jnp)), (0, None))(V, 3),
    "custom_jvp jvp": lambda jax, jnp: jax.jvp(lambda x: _power(jax, jnp)(x, 3), (2.,), (1.,)),
    "custom_vjp positions": lambda jax, jnp: _scaled(jax, jnp).nondiff_argnums,
    "custom_vjp grad": lambda jax, jnp: jax.grad(
        lambda x: _scaled(jax, jnp)(jnp.sin, x, 3.))(1.),
    "custom_vjp by keyword": lambda jax, jnp: jax.grad(
        lambda x: _scaled(jax, jnp)(jnp.sin, x, k=3.))(1.),
    "custom_vjp vmap of grad": lambda jax, jnp: jax.vmap(jax.grad(
        lambda x: _scaled(jax, jnp)(jnp.sin, x, 3.)))(V),
    "positional-only parameters are not named": lambda jax, jnp: jax.custom_jvp(
        eval("lambda x, /, y: x * y"), nondiff_argnames=("x", "y")).nondiff_argnums,
    "a single name": lambda jax, jnp: jax.custom_vjp(
        lambda x, y: x, nondiff_argnames="y").nondiff_argnums,
}


@pytest.mark.parametrize("name", NONDIFF_ARGNAMES)
def test_nondiff_argnames(name):
    _both(NONDIFF_ARGNAMES[name])


# ---------------------------------------------------------------------------
# The function vjp returns is a pytree


def _nested(jax, jnp):
    """A custom_vjp whose fwd returns vjp's function as its residual."""
    def f(x):
        return x ** 2

    @jax.custom_vjp
    def g(x):
        return f(x)

    g.defvjp(lambda x: jax.vjp(f, x), lambda f_vjp, y_bar: f_vjp(y_bar))
    return g


VJP_AS_PYTREE = {
    "grad": lambda jax, jnp: jax.grad(_nested(jax, jnp))(1.),
    "jit of grad": lambda jax, jnp: jax.jit(jax.grad(_nested(jax, jnp)))(1.),
    "vmap of grad": lambda jax, jnp: jax.vmap(jax.grad(_nested(jax, jnp)))(V),
    "grad of vmap": lambda jax, jnp: jax.grad(
        lambda x: jnp.sum(jax.vmap(_nested(jax, jnp))(x)))(V),
    "grad of grad": lambda jax, jnp: jax.grad(jax.grad(_nested(jax, jnp)))(1.),
    "out of jit": lambda jax, jnp: jax.jit(lambda x: jax.vjp(jnp.sin, x))(1.)[1](1.),
    "into jit": lambda jax, jnp: jax.jit(lambda f_vjp, c: f_vjp(c))(
        jax.vjp(jnp.sin, jnp.asarray(V))[1], jnp.ones(3)),
    "its leaves": lambda jax, jnp: len(jax.tree.leaves(jax.vjp(jnp.sin, jnp.asarray(V))[1])),
}


@pytest.mark.parametrize("name", VJP_AS_PYTREE)
def test_the_function_vjp_returns_is_a_pytree(name):
    _both(VJP_AS_PYTREE[name])


def test_grad_never_unflattens_placeholder_children():
    def run(jax, jnp):
        class Pair:
            def __init__(self, a, b):
                if a is None or b is None:
                    raise ValueError("a Pair holds two values")
                self.a, self.b = a, b

        jax.tree_util.register_pytree_node(Pair, lambda p: ((p.a, p.b), None),
                                           lambda _, children: Pair(*children))
        loss = lambda p: p.a * jnp.sin(p.b)
        g = jax.grad(loss)(Pair(2., 1.))
        _, f_vjp = jax.vjp(loss, Pair(2., 1.))
        return (g.a, g.b), (f_vjp(1.)[0].a, jax.value_and_grad(loss)(Pair(1., 2.))[1].b)
    _both(run)


# ---------------------------------------------------------------------------
# The cotangents a bwd rule returns


def _bwd_returning(jax, jnp, cts):
    @jax.custom_vjp
    def f(x, p):
        return x * p["a"] * p["b"][0]
    f.defvjp(lambda x, p: (f(x, p), None), lambda res, g: cts(jnp))
    return _error(lambda: jax.grad(f, (0, 1))(2., {"a": 3., "b": [4.]}))


BWD_COTANGENTS = {
    "wrong shape": lambda jnp: (jnp.ones(3), {"a": 1., "b": [1.]}),
    "wrong shape in a pytree": lambda jnp: (1., {"a": 1., "b": [jnp.ones(2)]}),
    "wrong shape and dtype": lambda jnp: (1., {"a": jnp.ones(3, jnp.int32), "b": [1.]}),
    "another dtype, same shape": lambda jnp: (jnp.int32(1), {"a": 1., "b": [1.]}),
}


@pytest.mark.parametrize("name", BWD_COTANGENTS)
def test_bwd_cotangent_checks_and_messages(name):
    _both(lambda jax, jnp: _bwd_returning(jax, jnp, BWD_COTANGENTS[name]))


def test_a_bwd_cotangent_for_an_integer_input_is_ignored():
    def run(jax, jnp):
        @jax.custom_vjp
        def f(x, n):
            return x * n
        f.defvjp(lambda x, n: (f(x, n), n), lambda n, g: (g * n, jnp.ones(5)))
        return jax.grad(f, (0, 1), allow_int=True)(2., 3)
    _both(run)


def test_bwd_receives_float0_cotangents_for_integer_outputs():
    def run(jax, jnp):
        seen = []

        @jax.custom_vjp
        def f(x):
            return x * 2., jnp.round(x).astype(jnp.int32)

        def f_bwd(res, cts):
            seen.append([(c.dtype.name, np.shape(c)) for c in cts])
            return (2. * cts[0],)

        f.defvjp(lambda x: (f(x), None), f_bwd)
        return jax.grad(lambda x: f(x)[0])(1.), seen
    _both(run)


# ---------------------------------------------------------------------------
# float0 and allow_int


FLOAT0 = {
    "grad allow_int": lambda jax, jnp: jax.grad(lambda x, n: x * n, (0, 1), allow_int=True)(
        2., 3),
    "grad allow_int, a bool": lambda jax, jnp: jax.grad(
        lambda x, b: x * b, 1, allow_int=True)(2., True),
    "grad allow_int, a pytree": lambda jax, jnp: jax.grad(
        lambda d: d["x"] * jnp.sum(d["n"]), allow_int=True)({"x": 2., "n": N}),
    "value_and_grad allow_int": lambda jax, jnp: jax.value_and_grad(
        lambda x, n: x * n, (0, 1), allow_int=True)(2., 3),
    "grad of an integer, refused": lambda jax, jnp: _error(
        lambda: jax.grad(lambda x, n: x * n, 1)(2., 3)),
    "grad of an integer output, refused": lambda jax, jnp: _error(
        lambda: jax.grad(lambda x: jnp.round(x).astype(jnp.int32))(2.)),
    "jit of grad allow_int": lambda jax, jnp: jax.jit(
        jax.grad(lambda x, n: x * n, 1, allow_int=True))(2., 3),
    "vmap of grad allow_int": lambda jax, jnp: jax.vmap(
        jax.grad(lambda x, n: x * n, 1, allow_int=True))(V, N),
    "jvp of a comparison": lambda jax, jnp: jax.jvp(lambda x: (x > 0, x), (V,), (V,)),
    "jvp with a float0 tangent": lambda jax, jnp: jax.jvp(
        lambda x, n: x * n, (2., 3), (1., np.zeros((), jax.dtypes.float0))),
    "jvp with an integer tangent, refused": lambda jax, jnp: _error(
        lambda: jax.jvp(lambda x, n: x * n, (2., 3), (1., 1))),
    "jvp with a float0 tangent for a float, refused": lambda jax, jnp: _error(
        lambda: jax.jvp(jnp.sin, (2.,), (np.zeros((), jax.dtypes.float0),))),
    "jvp with a tangent of the wrong shape, refused": lambda jax, jnp: _error(
        lambda: jax.jvp(jnp.sin, (V,), (np.ones(2, np.float32),))),
    "jit of jvp": lambda jax, jnp: jax.jit(lambda x: jax.jvp(lambda a: a > 0, (x,), (x,)))(V),
    "vmap of jvp": lambda jax, jnp: jax.vmap(lambda x: jax.jvp(lambda a: a > 0, (x,), (x,)))(V),
    "linearize": lambda jax, jnp: jax.linearize(lambda x: (x > 0, 2. * x), 1.)[1](1.),
    "linearize with an integer tangent, refused": lambda jax, jnp: _error(
        lambda: jax.linearize(lambda x, n: x * n, 1., 3)[1](1., 1)),
    "vjp of an integer input": lambda jax, jnp: jax.vjp(lambda x, n: x * n, 2., 3)[1](1.),
    "vjp, any cotangent of an integer output": lambda jax, jnp: jax.vjp(
        lambda x: (x, jnp.int32(2)), 1.)[1]((1., 1.)),
    "vjp, an integer cotangent of a float output, refused": lambda jax, jnp: _error(
        lambda: jax.vjp(jnp.sin, 1.)[1](1)),
    "float0 dtype and text": lambda jax, jnp: (
        jax.grad(lambda n: n * 2., allow_int=True)(3).dtype == jax.dtypes.float0,
        str(jax.grad(lambda n: jnp.sum(n * 2.), allow_int=True)(N)), jax.float0),
}


@pytest.mark.parametrize("name", FLOAT0)
def test_float0_tangents_of_integers(name):
    _both(FLOAT0[name])


# ---------------------------------------------------------------------------
# minijax.tree and jnp.ndim

T = {"a": (1., 2.), "b": [3., None], "c": 4.}

TREE = {
    "map": lambda jax: jax.tree.map(lambda x: x * 2, T),
    "map of two trees": lambda jax: jax.tree.map(lambda x, y: x + y, T, T),
    "map with is_leaf": lambda jax: jax.tree.map(lambda x: x, T, is_leaf=lambda x: x is None),
    "leaves": lambda jax: jax.tree.leaves(T),
    "leaves with is_leaf": lambda jax: jax.tree.leaves(T, is_leaf=lambda x: type(x) is tuple),
    "structure": lambda jax: str(jax.tree.structure(T)),
    "flatten": lambda jax: (jax.tree.flatten(T)[0], str(jax.tree.flatten(T)[1])),
    "unflatten": lambda jax: jax.tree.unflatten(jax.tree.structure(T), list(range(4))),
    "treedef.unflatten": lambda jax: jax.tree.structure(T).unflatten(list(range(4))),
    "too many leaves": lambda jax: _error(
        lambda: jax.tree.unflatten(jax.tree.structure(T), list(range(5)))),
    "too few leaves": lambda jax: _error(
        lambda: jax.tree.unflatten(jax.tree.structure(T), list(range(3)))),
    "reduce": lambda jax: jax.tree.reduce(lambda a, b: a + b, T),
    "reduce with an initializer": lambda jax: jax.tree.reduce(lambda a, b: a + b, T, 10.),
    "reduce of no leaves": lambda jax: _error(lambda: jax.tree.reduce(lambda a, b: a, [])),
    "all": lambda jax: (jax.tree.all(T), jax.tree.all([1, 0]), jax.tree.all([])),
    "broadcast": lambda jax: jax.tree.broadcast((1, 2), ((3, 4), {"a": 5, "b": 6})),
    "transpose": lambda jax: jax.tree.transpose(
        jax.tree.structure([0, 0]), jax.tree.structure((0, 0, 0)), [(1, 2, 3), (4, 5, 6)]),
    "transpose, inner structure inferred": lambda jax: jax.tree.transpose(
        jax.tree.structure({"x": 0, "y": 0}), None, {"x": [1, 2], "y": [3, 4]}),
    "transpose of the wrong structure": lambda jax: _error(lambda: jax.tree.transpose(
        jax.tree.structure([0, 0]), jax.tree.structure((0, 0)), [(1, 2, 3), (4, 5, 6)])),
    "Partial": lambda jax: jax.tree_util.Partial(lambda a, b: a + b, 1.)(2.),
    "Partial leaves": lambda jax: jax.tree.leaves(
        jax.tree_util.Partial(lambda a, b, c: a, 3., c=4.)),
    "Partial through jit": lambda jax: jax.jit(lambda f, x: f(x))(
        jax.tree_util.Partial(lambda a, b: a * b, 3.), 2.),
}


@pytest.mark.parametrize("name", TREE)
def test_tree(name):
    _both(lambda jax, jnp: TREE[name](jax))


def test_ndim():
    _both(lambda jax, jnp: (
        jnp.ndim(3.), jnp.ndim(True), jnp.ndim(jnp.ones((2, 3))), jnp.ndim(N),
        jax.jit(jnp.ndim)(jnp.ones((2, 2))), jax.vmap(lambda x: jnp.ndim(x) * x)(V),
        jax.grad(lambda x: jnp.ndim(x) * x)(1.)))
