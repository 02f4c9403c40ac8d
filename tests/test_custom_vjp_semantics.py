"""custom_vjp's rules of behaviour, each checked on minijax beside JAX.

Which of ``f``, ``fwd`` and ``bwd`` runs, and in which order, under each
transformation and composition; forward mode's refusal; ``None`` cotangents;
pytrees; ``nondiff_argnums`` (with custom_jvp too); the errors of malformed rules.
Every test runs the same function on both libraries with ``parity.assert_same``
and, where a rule is stated, also checks minijax's side against it.
Chapters: using_custom_vjp, pytrees, nondiff_argnums.
"""
from collections import namedtuple
from functools import partial

import pytest

from parity import assert_same

Point = namedtuple("Point", ["x", "y"])


# ---------------------------------------------------------------------------
# Which function runs when


def _logged(jax, jnp, log):
    """The tutorial's sin with a custom VJP, each function noting that it ran."""
    @jax.custom_vjp
    def f(x):
        log.append("f")
        return jnp.sin(x)

    def f_fwd(x):
        log.append("fwd")
        return f(x), jnp.cos(x)

    def f_bwd(cos_x, y_bar):
        log.append("bwd")
        return (cos_x * y_bar,)

    f.defvjp(f_fwd, f_bwd)
    return f


def _log_of(body):
    """Run ``body(jax, jnp, f, log)`` on both libraries; the results and the logs
    must agree. Returns minijax's log."""
    def run(jax, jnp):
        log = []
        result = body(jax, jnp, _logged(jax, jnp, log), log)
        return result, log
    return assert_same(run)[1]


def _vjp_then_pull_back_twice(jax, jnp, f, log):
    y, f_vjp = jax.vjp(f, 3.)
    log.append("vjp returned")
    first = f_vjp(1.)
    log.append("pulled back once")
    return y, first, f_vjp(2.)


def _jit_grad_twice(jax, jnp, f, log):
    grad_f = jax.jit(jax.grad(f))
    first = grad_f(3.)
    log.append("second call")
    return first, grad_f(4.)


def _jit_twice(jax, jnp, f, log):
    jitted = jax.jit(f)
    first = jitted(3.)
    log.append("second call")
    return first, jitted(4.)


def _sum_of_vmap(jax, f):
    return lambda x: jax.numpy.sum(jax.vmap(f)(x))


ONLY_F = ["f"]
FWD_F_BWD = ["fwd", "f", "bwd"]

ORDER = {
    # Evaluation and the transformations that do not differentiate run f alone.
    "eval": (lambda jax, jnp, f, log: f(3.), ONLY_F),
    "jit": (lambda jax, jnp, f, log: jax.jit(f)(3.), ONLY_F),
    "jit, called twice": (_jit_twice, ["f", "second call"]),
    "vmap": (lambda jax, jnp, f, log: jax.vmap(f)(jnp.arange(3.)), ONLY_F),
    "jit of vmap": (lambda jax, jnp, f, log: jax.jit(jax.vmap(f))(jnp.arange(3.)), ONLY_F),
    "make_jaxpr": (lambda jax, jnp, f, log: str(jax.make_jaxpr(f)(3.)) and None, ONLY_F),
    # Reverse mode: the forward rule (which calls f), then the backward rule.
    "grad": (lambda jax, jnp, f, log: jax.grad(f)(3.), FWD_F_BWD),
    "value_and_grad": (lambda jax, jnp, f, log: jax.value_and_grad(f)(3.), FWD_F_BWD),
    "vjp: bwd runs at each pull-back": (
        _vjp_then_pull_back_twice,
        ["fwd", "f", "vjp returned", "bwd", "pulled back once", "bwd"]),
    "jit of grad: traced once": (_jit_grad_twice, FWD_F_BWD + ["second call"]),
    "grad of jit: f staged first": (lambda jax, jnp, f, log: jax.grad(jax.jit(f))(3.),
                                    ["f"] + FWD_F_BWD),
    "make_jaxpr of grad": (lambda jax, jnp, f, log: str(jax.make_jaxpr(jax.grad(f))(3.))
                           and None, FWD_F_BWD),
    # Batching runs each rule once, on the whole batch.
    "vmap of grad": (lambda jax, jnp, f, log: jax.vmap(jax.grad(f))(jnp.arange(3.)),
                     FWD_F_BWD),
    "grad of vmap": (lambda jax, jnp, f, log: jax.grad(_sum_of_vmap(jax, f))(jnp.arange(3.)),
                     FWD_F_BWD),
    "jit of vmap of grad": (
        lambda jax, jnp, f, log: jax.jit(jax.vmap(jax.grad(f)))(jnp.arange(3.)), FWD_F_BWD),
    "vmap of grad of jit": (
        lambda jax, jnp, f, log: jax.vmap(jax.grad(jax.jit(f)))(jnp.arange(3.)),
        ["f"] + FWD_F_BWD),
    # A second derivative: fwd twice (the outer grad meets the call of f inside
    # the inner fwd), bwd once, itself differentiated by the outer grad.
    "grad of grad": (lambda jax, jnp, f, log: jax.grad(jax.grad(f))(3.),
                     ["fwd", "fwd", "f", "bwd"]),
    "jit of grad of grad": (lambda jax, jnp, f, log: jax.jit(jax.grad(jax.grad(f)))(3.),
                            ["fwd", "fwd", "f", "bwd"]),
    "vmap of grad of grad": (
        lambda jax, jnp, f, log: jax.vmap(jax.grad(jax.grad(f)))(jnp.arange(3.)),
        ["fwd", "fwd", "f", "bwd"]),
}


@pytest.mark.parametrize("name", ORDER)
def test_which_functions_run_and_in_what_order(name):
    body, expected = ORDER[name]
    assert _log_of(body) == expected


def test_bwd_is_differentiated_by_an_outer_grad():
    """The second derivative comes from differentiating fwd's residual and bwd's
    code with ordinary autodiff: a bwd that ignores the residual gives 0."""
    def run(jax, jnp):
        @jax.custom_vjp
        def f(x):
            return jnp.sin(x)
        f.defvjp(lambda x: (f(x), jnp.cos(x)), lambda c, g: (c * g,))

        @jax.custom_vjp
        def constant_slope(x):
            return jnp.sin(x)
        constant_slope.defvjp(lambda x: (constant_slope(x), None), lambda _, g: (2. * g,))
        return (jax.grad(jax.grad(f))(3.), jax.grad(jax.grad(constant_slope))(3.),
                jax.grad(jax.grad(jax.grad(f)))(3.))
    assert_same(run)


def test_vmap_batches_fwd_and_bwd_with_mixed_axes():
    """Batched and unbatched arguments, residuals and cotangents meet in bwd."""
    def run(jax, jnp):
        @jax.custom_vjp
        def f(x, y):
            return jnp.sin(x) * y
        f.defvjp(lambda x, y: (f(x, y), (jnp.cos(x), jnp.sin(x), y)),
                 lambda res, g: (res[0] * g * res[2], res[1] * g))
        xs, ys = jnp.arange(3.), jnp.arange(4., 7.)
        pull_back = lambda x, y, ct: jax.vjp(f, x, y)[1](ct)  # noqa: E731
        return (jax.vmap(jax.grad(f, (0, 1)), in_axes=(0, None))(xs, 2.),
                jax.vmap(jax.grad(f, (0, 1)), in_axes=(None, 0))(1., ys),
                jax.vmap(jax.grad(f, (0, 1)))(xs, ys),
                jax.vmap(pull_back, in_axes=(None, None, 0))(1., 2., ys),
                jax.vmap(jax.vmap(jax.grad(f), in_axes=(0, None)), in_axes=(None, 0))(xs, ys))
    assert_same(run)


# ---------------------------------------------------------------------------
# Forward mode


def _jvp_at(jax, f):
    return lambda x: jax.jvp(f, (x,), (jax.numpy.ones_like(x),))


def _linearize_then_push(jax, jnp, f, log):
    _, f_jvp = jax.linearize(f, 3.)
    log.append("linearized")
    return f_jvp(1.)


FORWARD_MODE = {
    "jvp": (lambda jax, jnp, f, log: _jvp_at(jax, f)(3.), ["fwd", "f"]),
    "jit of jvp": (lambda jax, jnp, f, log: jax.jit(_jvp_at(jax, f))(jnp.arange(3.)),
                   ["fwd", "f"]),
    "vmap of jvp": (lambda jax, jnp, f, log: jax.vmap(_jvp_at(jax, f))(jnp.arange(3.)),
                    ["fwd", "f"]),
    "jvp of jit": (lambda jax, jnp, f, log: _jvp_at(jax, jax.jit(f))(3.),
                   ["f", "fwd", "f"]),
    "jvp of vmap": (lambda jax, jnp, f, log: _jvp_at(jax, jax.vmap(f))(jnp.arange(3.)),
                    ["fwd", "f"]),
    "jvp of grad (forward over reverse)": (
        lambda jax, jnp, f, log: _jvp_at(jax, jax.grad(f))(3.), ["fwd", "fwd", "f"]),
    "linearize, then push a tangent": (_linearize_then_push, ["fwd", "f", "linearized"]),
}


@pytest.mark.parametrize("name", FORWARD_MODE)
def test_forward_mode_raises_type_error_after_fwd_ran(name):
    body, expected = FORWARD_MODE[name]

    def refused(jax, jnp, f, log):
        try:
            body(jax, jnp, f, log)
        except TypeError as e:
            return str(e)
        return "no error"

    def run(jax, jnp):
        log = []
        return refused(jax, jnp, _logged(jax, jnp, log), log), log
    message, log = assert_same(run)
    assert message == "can't apply forward-mode autodiff (jvp) to a custom_vjp function."
    assert log == expected


def _closing_over_a_value_jvp_differentiates(jax, jnp):
    def f(x):
        c = jnp.mean(x)

        @jax.custom_vjp
        def h(a):
            return a * a * c
        h.defvjp(lambda a: (a * a * c, (a,)), lambda res, g: (2. * res[0] * c * g,))
        return h(x)
    return _jvp_at(jax, f)


CLOSURE_UNDER_JVP = {
    "jvp": (lambda jax, f: f, "UnexpectedTracerError"),
    "jit of jvp": (lambda jax, f: jax.jit(f), "UnexpectedTracerError"),
    "vmap of jvp": (lambda jax, f: jax.vmap(f), "UnexpectedTracerError"),
    "vmap of jit of jvp": (lambda jax, f: jax.vmap(jax.jit(f)), "TypeError"),
}


@pytest.mark.parametrize("name", CLOSURE_UNDER_JVP)
def test_fwd_closing_over_a_value_jvp_differentiates(name):
    """fwd runs with jvp's parent current, so the JVPTracer it closes over has escaped.
    Computing with it outside any transformation is refused as a leak. A staging trace
    keeps it as a constant instead (jvp leaves its trace valid), and under vmap the
    batching rule of custom_lin refuses the jaxpr first, with forward mode's message."""
    transform, expected = CLOSURE_UNDER_JVP[name]

    def run(jax, jnp):
        f = transform(jax, _closing_over_a_value_jvp_differentiates(jax, jnp))
        try:
            f(jnp.array([2.75, -0.25]))
        except Exception as e:
            return type(e).__name__, str(e).splitlines()[0]
        return "no error"
    assert assert_same(run)[0] == expected


# ---------------------------------------------------------------------------
# None as a zero cotangent


def test_none_for_a_whole_argument():
    def run(jax, jnp):
        @jax.custom_vjp
        def scale(x, s):
            return x * s
        scale.defvjp(lambda x, s: (scale(x, s), s), lambda s, g: (s * g, None))
        both = jax.grad(scale, argnums=(0, 1))
        return (both(2., 3.), jax.jit(both)(2., 3.),
                jax.vmap(both)(jnp.arange(3.), jnp.arange(3.)),
                jax.grad(scale)(2., 3))  # an integer argument gets no cotangent
    result = assert_same(run)
    assert float(result[0][1]) == 0.0


def test_none_for_a_leaf_and_for_a_whole_pytree():
    def run(jax, jnp):
        @jax.custom_vjp
        def dist2(pt):
            return pt.x ** 2 + pt.y ** 2
        dist2.defvjp(lambda pt: (dist2(pt), pt), lambda pt, g: (Point(2 * pt.x * g, None),))

        @jax.custom_vjp
        def frozen(pt):
            return pt.x ** 2 + pt.y ** 2
        frozen.defvjp(lambda pt: (frozen(pt), pt), lambda pt, g: (None,))

        @jax.custom_vjp
        def params_loss(params, x):
            return params["w"] * x + params["b"]
        params_loss.defvjp(lambda p, x: (params_loss(p, x), (p, x)),
                           lambda res, g: ({"w": res[1] * g, "b": None}, None))
        pts = Point(jnp.arange(3.), jnp.arange(3., 6.))
        return (jax.grad(dist2)(Point(1., 2.)), jax.grad(frozen)(Point(1., 2.)),
                jax.vmap(jax.grad(dist2))(pts), jax.jit(jax.grad(frozen))(Point(1., 2.)),
                jax.grad(params_loss)({"w": 2., "b": 1.}, 3.))
    assert_same(run)


# ---------------------------------------------------------------------------
# Pytrees


def _tutorial_custom_jvp(jax, jnp):
    @jax.custom_jvp
    def f(pt):
        x, y = pt.x, pt.y
        return {"a": x ** 2, "b": (jnp.sin(x), jnp.cos(y))}

    @f.defjvp
    def f_jvp(primals, tangents):
        pt, = primals
        pt_dot, = tangents
        ans_dot = {"a": 2 * pt.x * pt_dot.x,
                   "b": (jnp.cos(pt.x) * pt_dot.x, -jnp.sin(pt.y) * pt_dot.y)}
        return f(pt), ans_dot
    return f


def _tutorial_custom_vjp(jax, jnp):
    @jax.custom_vjp
    def f(pt):
        x, y = pt.x, pt.y
        return {"a": x ** 2, "b": (jnp.sin(x), jnp.cos(y))}

    def f_bwd(pt, g):
        a_bar, (b0_bar, b1_bar) = g["a"], g["b"]
        x_bar = 2 * pt.x * a_bar + jnp.cos(pt.x) * b0_bar
        return (Point(x_bar, -jnp.sin(pt.y) * b1_bar),)
    f.defvjp(lambda pt: (f(pt), pt), f_bwd)
    return f


@pytest.mark.parametrize("make", [_tutorial_custom_jvp, _tutorial_custom_vjp],
                         ids=["custom_jvp", "custom_vjp"])
def test_namedtuple_in_dict_out(make):
    def run(jax, jnp):
        f = make(jax, jnp)

        def fun(pt):
            dct = f(pt)
            return dct["a"] + dct["b"][0]
        pt = Point(1., 2.)
        pts = Point(jnp.array([0., 1.]), jnp.array([2., 3.]))
        return (f(pt), jax.grad(fun)(pt), jax.jit(jax.grad(fun))(pt),
                jax.vmap(jax.grad(fun))(pts), jax.jit(f)(pt))
    assert_same(run)


def test_cotangent_of_a_pytree_output_has_its_structure():
    def run(jax, jnp):
        f = _tutorial_custom_vjp(jax, jnp)
        pt = Point(jnp.float32(1.), jnp.float32(2.))
        y, f_vjp = jax.vjp(f, pt)
        return y, f_vjp({"a": 1., "b": (1., 1.)}), f_vjp({"a": 0., "b": (0., 2.)})
    assert_same(run)


def test_pytree_residuals_lists_and_nested_outputs():
    def run(jax, jnp):
        @jax.custom_vjp
        def f(xs):
            return [xs[0] * xs[1], (jnp.sin(xs[0]), {"c": xs[1] ** 2})]

        def f_fwd(xs):
            return f(xs), {"xs": list(xs), "cos": (jnp.cos(xs[0]),)}

        def f_bwd(res, g):
            (x0, x1), cos0 = res["xs"], res["cos"][0]
            g0, (g1, g2) = g[0], g[1]
            return ([g0 * x1 + cos0 * g1, g0 * x0 + 2 * x1 * g2["c"]],)
        f.defvjp(f_fwd, f_bwd)

        def total(xs):
            out = f(xs)
            return out[0] + out[1][0] + out[1][1]["c"]
        return (jax.grad(total)([1., 2.]), jax.vmap(jax.grad(total))([jnp.arange(3.),
                                                                     jnp.arange(3.)]))
    assert_same(run)


# ---------------------------------------------------------------------------
# nondiff_argnums


def test_custom_jvp_nondiff_argnums_go_first_to_the_rule():
    def run(jax, jnp):
        @partial(jax.custom_jvp, nondiff_argnums=(0,))
        def app(f, x):
            return f(x)

        @app.defjvp
        def app_jvp(f, primals, tangents):
            x, = primals
            x_dot, = tangents
            return f(x), 2. * x_dot

        @partial(jax.custom_jvp, nondiff_argnums=(0, 2))
        def app2(f, x, g):
            return f(g(x))

        @app2.defjvp
        def app2_jvp(f, g, primals, tangents):
            x, = primals
            x_dot, = tangents
            return f(g(x)), 3. * x_dot

        cube, times5 = (lambda x: x ** 3), (lambda y: 5 * y)
        return (app(cube, 3.), jax.grad(app, 1)(cube, 3.), app2(cube, 3., times5),
                jax.grad(app2, 1)(cube, 3., times5),
                jax.jit(jax.grad(app, 1), static_argnums=0)(cube, 3.),
                jax.vmap(lambda x: jax.grad(app, 1)(cube, x))(jnp.arange(3.)),
                jax.jvp(lambda x: app(cube, x), (jnp.array(3.),), (jnp.array(1.),)),
                jax.grad(jax.grad(app, 1), 1)(cube, 3.))
    assert_same(run)


def test_custom_vjp_nondiff_argnums_go_first_to_bwd_only():
    def run(jax, jnp):
        seen = []

        @partial(jax.custom_vjp, nondiff_argnums=(0, 2))
        def app2(f, x, g):
            return f(g(x))

        def app2_fwd(f, x, g):  # fwd keeps the primal signature
            seen.append(("fwd", f(1.), g(1.)))
            return app2(f, x, g), x

        def app2_bwd(f, g, x, ct):  # bwd: nondiff arguments, residuals, cotangent
            seen.append(("bwd", f(1.), g(1.), float(x)))
            return (3. * ct,)  # cotangents of the differentiable arguments only
        app2.defvjp(app2_fwd, app2_bwd)

        cube, times5 = (lambda x: x ** 3), (lambda y: 5 * y)
        out = (app2(cube, 3., times5), jax.grad(app2, 1)(cube, 3., times5),
               jax.jit(jax.grad(app2, 1), static_argnums=(0, 2))(cube, 3., times5),
               jax.vmap(lambda x: jax.grad(app2, 1)(cube, x, times5))(jnp.arange(3.)))
        return out, seen[:2]
    assert_same(run)


def test_tutorial_app_with_custom_vjp():
    def run(jax, jnp):
        @partial(jax.custom_vjp, nondiff_argnums=(0,))
        def app(f, x):
            return f(x)
        app.defvjp(lambda f, x: (f(x), x), lambda f, x, g: (5 * g,))
        square = lambda x: x ** 2  # noqa: E731
        return (app(square, 4.), jax.grad(app, 1)(square, 4.),
                jax.grad(jax.grad(app, 1), 1)(square, 4.),
                jax.vjp(lambda x: app(square, x), 4.)[1](1.))
    assert_same(run)


def _scaled_sin_nondiff(jax, jnp):
    @partial(jax.custom_vjp, nondiff_argnums=(0,))
    def scaled_sin(a, x):
        return a * jnp.sin(x)
    scaled_sin.defvjp(lambda a, x: (scaled_sin(a, x), jnp.cos(x)),
                      lambda a, cos_x, g: (a * cos_x * g,))
    return scaled_sin


TRACED_NONDIFF = {
    "jit": lambda jax, jnp, f: jax.jit(f)(2., 3.),
    "vmap over it": lambda jax, jnp, f: jax.vmap(f, in_axes=(0, None))(jnp.arange(3.), 3.),
    "grad with respect to it": lambda jax, jnp, f: jax.grad(f, 0)(2., 3.),
    "inside a pytree": lambda jax, jnp, f: jax.jit(lambda a: f([a], 3.))(2.),
}


@pytest.mark.parametrize("name", TRACED_NONDIFF)
def test_custom_vjp_rejects_a_tracer_in_a_nondiff_position(name):
    def run(jax, jnp):
        f = _scaled_sin_nondiff(jax, jnp)
        if name == "inside a pytree":
            f = partial(jax.custom_vjp, nondiff_argnums=(0,))(lambda a, x: a[0] * jnp.sin(x))
            f.defvjp(lambda a, x: (a[0] * jnp.sin(x), None), lambda a, r, g: (g,))
        try:
            TRACED_NONDIFF[name](jax, jnp, f)
        except Exception as e:
            return type(e).__name__, str(e).split()[:2]
        return "no error"
    assert assert_same(run) == ("UnexpectedTracerError", ["Found", "a"])


def test_concrete_values_in_nondiff_positions_are_fine():
    def run(jax, jnp):
        f = _scaled_sin_nondiff(jax, jnp)
        return (f(2., 3.), jax.grad(f, 1)(2., 3.),
                jax.jit(lambda x: f(2., x))(3.), jax.vmap(lambda x: f(2., x))(jnp.arange(3.)))
    assert_same(run)


def test_arrays_as_ordinary_arguments_instead():
    def run(jax, jnp):
        @jax.custom_vjp
        def scaled_sin(a, x):
            return a * jnp.sin(x)
        scaled_sin.defvjp(lambda a, x: (scaled_sin(a, x), (a, jnp.cos(x))),
                          lambda res, g: (None, res[0] * res[1] * g))

        @jax.custom_jvp
        def scaled_sin_jvp(a, x):
            return a * jnp.sin(x)

        @scaled_sin_jvp.defjvp
        def rule(primals, tangents):
            a, x = primals
            return scaled_sin_jvp(a, x), a * jnp.cos(x) * tangents[1]
        out = []
        for f in (scaled_sin, scaled_sin_jvp):
            out += [jax.jit(f)(2., 3.), jax.vmap(f, in_axes=(0, None))(jnp.arange(3.), 3.),
                    jax.grad(f, (0, 1))(2., 3.), jax.jit(jax.grad(f, 1))(2., 3.)]
        return out
    assert_same(run)


def _custom_jvp_scale(jax):
    @partial(jax.custom_jvp, nondiff_argnums=(0,))
    def f(a, x):
        return a * x

    @f.defjvp
    def f_jvp(a, primals, tangents):
        return f(a, primals[0]), a * tangents[0]
    return f


TRACED_NONDIFF_JVP = {
    "grad with respect to it": lambda jax, jnp, f: jax.grad(lambda a: f(a, 3.))(2.),
    "jit": lambda jax, jnp, f: jax.jit(f)(2., 3.),
    "vmap over it": lambda jax, jnp, f: jax.vmap(f, (0, None))(jnp.arange(3.), 3.),
}


@pytest.mark.parametrize("name", TRACED_NONDIFF_JVP)
def test_custom_jvp_accepts_a_traced_nondiff_argument(name):
    assert_same(lambda jax, jnp: TRACED_NONDIFF_JVP[name](jax, jnp, _custom_jvp_scale(jax)))


# ---------------------------------------------------------------------------
# Errors of malformed rules


def _error(thunk, words=None):
    try:
        thunk()
    except Exception as e:
        message = str(e) if words is None else " ".join(str(e).split()[:words])
        return type(e).__name__, message
    return "no error"


def _sin_with_bwd(jax, jnp, bwd):
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)
    f.defvjp(lambda x: (f(x), jnp.cos(x)), bwd)
    return f


def _two_args_with_bwd(jax, jnp, bwd):
    @jax.custom_vjp
    def f(x, y):
        return jnp.sin(x) * y
    f.defvjp(lambda x, y: (f(x, y), (jnp.cos(x), y)), bwd)
    return f


BAD_STRUCTURE = {
    "one cotangent short": lambda jax, jnp: jax.grad(_two_args_with_bwd(
        jax, jnp, lambda r, g: (r[0] * r[1] * g,)))(2., 3.),
    "one cotangent too many": lambda jax, jnp: jax.grad(_sin_with_bwd(
        jax, jnp, lambda c, g: (c * g, g)))(2.),
    "a bare array": lambda jax, jnp: jax.grad(_sin_with_bwd(
        jax, jnp, lambda c, g: c * g))(2.),
    "a pair for a Point": lambda jax, jnp: jax.grad(lambda pt: _point_fn(jax, jnp)(pt))(
        Point(1., 2.)),
    "under jit": lambda jax, jnp: jax.jit(jax.grad(_sin_with_bwd(
        jax, jnp, lambda c, g: c * g)))(2.),
    "under vmap": lambda jax, jnp: jax.vmap(jax.grad(_sin_with_bwd(
        jax, jnp, lambda c, g: c * g)))(jnp.arange(2.)),
    "at the pull-back of vjp": lambda jax, jnp: jax.vjp(_sin_with_bwd(
        jax, jnp, lambda c, g: c * g), 2.)[1](1.),
}


def _point_fn(jax, jnp):
    @jax.custom_vjp
    def f(pt):
        return pt.x * pt.y
    f.defvjp(lambda pt: (f(pt), pt), lambda pt, g: (pt.y * g, pt.x * g))
    return f


@pytest.mark.parametrize("name", BAD_STRUCTURE)
def test_bwd_output_of_the_wrong_structure_is_a_type_error(name):
    kind, message = assert_same(lambda jax, jnp: _error(lambda: BAD_STRUCTURE[name](jax, jnp)))
    assert kind == "TypeError"
    assert message.startswith("Custom VJP bwd rule must produce an output with the same "
                              "container (pytree) structure")


def test_bwd_output_of_the_wrong_shape_is_a_value_error():
    def run(jax, jnp):
        f = _sin_with_bwd(jax, jnp, lambda c, g: (jnp.ones(3),))
        return _error(lambda: jax.grad(f)(2.), words=14)
    assert assert_same(run)[0] == "ValueError"


def test_fwd_output_that_is_not_a_pair_is_a_type_error():
    def run(jax, jnp):
        @jax.custom_vjp
        def f(x):
            return jnp.sin(x)
        f.defvjp(lambda x: f(x), lambda c, g: (g,))
        return _error(lambda: jax.grad(f)(2.), words=8), f(2.)
    assert assert_same(run)[0][0] == "TypeError"


@pytest.mark.parametrize("call", ["eval", "grad", "jit", "vmap"])
def test_no_rule_is_an_attribute_error(call):
    def run(jax, jnp):
        @jax.custom_vjp
        def f(x):
            return jnp.sin(x)
        transform = {"eval": lambda g: g, "grad": jax.grad, "jit": jax.jit,
                     "vmap": jax.vmap}[call]
        x = jnp.ones(3) if call == "vmap" else jnp.ones(())
        return _error(lambda: transform(f)(x))
    assert assert_same(run) == ("AttributeError",
                                "No VJP defined for custom_vjp function f using defvjp.")


def test_keyword_arguments_and_defaults_map_to_positions():
    def run(jax, jnp):
        @jax.custom_vjp
        def f(x, y=3.):
            return jnp.sin(x) * y

        def f_fwd(x, y):
            return f(x, y), (jnp.cos(x), jnp.sin(x), y)
        f.defvjp(f_fwd, lambda res, g: (res[0] * g * res[2], res[1] * g))
        return (f(2.), f(y=3., x=2.), jax.grad(f)(2.), jax.grad(f, 1)(2., 4.),
                jax.grad(lambda y: f(2., y=y))(3.), _error(lambda: f(y=3.), words=2))
    assert_same(run)


def test_unbindable_arguments_error_names_custom_vjp():
    def run(jax, jnp):
        @jax.custom_vjp
        def f(x, y=3.):
            return jnp.sin(x) * y
        f.defvjp(lambda x, y: (f(x, y), None), lambda res, g: (g, g))
        return _error(lambda: f(y=3.), words=6)
    assert_same(run)


def test_python_scalar_outputs_of_custom_rules_stay_python_scalars():
    def run(jax, jnp):
        y, _ = jax.vjp(_tutorial_custom_vjp(jax, jnp), Point(1., 2.))
        return y["a"]
    assert_same(run)


# ---------------------------------------------------------------------------
# Batching: bwd runs batched at axis 0, and each cotangent goes back to its input's
# layout (its batch axis, or summed over the batch for an input vmap did not map).


def _sin_times(jax, jnp):
    @jax.custom_vjp
    def f(x, y):
        return jnp.sin(x) * y

    f.defvjp(lambda x, y: (f(x, y), (x, y)),
             lambda res, g: (jnp.cos(res[0]) * res[1] * g, jnp.sin(res[0]) * g))
    return f


X23 = [[0.0, 0.2, 0.4], [0.6, 0.8, 1.0]]
Y2 = [0.3, -0.7]
BATCHED_CALLS = {
    "grad_wrt_a_mapped_axis_1": lambda jax, jnp, f: jax.grad(
        lambda x: jax.vmap(f, in_axes=(1, None))(x, jnp.array(Y2)).sum())(jnp.array(X23)),
    "grad_wrt_an_unmapped_input": lambda jax, jnp, f: jax.grad(
        lambda y: jax.vmap(f, in_axes=(1, None))(jnp.array(X23), y).sum())(jnp.array(Y2)),
    "jit_of_it": lambda jax, jnp, f: jax.jit(jax.grad(
        lambda y: jax.vmap(f, in_axes=(1, None))(jnp.array(X23), y).sum()))(jnp.array(Y2)),
    "vjp_with_out_axes_1": lambda jax, jnp, f: jax.vjp(
        jax.vmap(f, in_axes=(1, None), out_axes=1), jnp.array(X23), jnp.array(Y2))[1](
        jnp.arange(6.).reshape(2, 3)),
    "vmap_of_grad": lambda jax, jnp, f: jax.vmap(jax.grad(f, argnums=(0, 1)),
                                                 in_axes=(1, None))(jnp.array(X23),
                                                                    jnp.array(Y2)),
}


@pytest.mark.parametrize("name", BATCHED_CALLS)
def test_cotangents_of_a_batched_call_have_their_inputs_layout(name):
    assert_same(lambda jax, jnp: BATCHED_CALLS[name](jax, jnp, _sin_times(jax, jnp)))


def test_differentiating_the_tangent_of_a_custom_vjp_is_not_implemented():
    def run(jax, jnp):
        f = _sin_times(jax, jnp)
        jvp_of_jvp = lambda x: jax.jvp(lambda x: jax.jvp(  # noqa: E731
            lambda x: f(x, 2.0), (x,), (1.0,))[1], (x,), (1.0,))
        try:
            jvp_of_jvp(1.0)
        except NotImplementedError as e:
            return str(e)

    assert_same(run)
