"""The machinery JAX 0.10.2 has, side by side with it: how tracers print, closures
in custom rules under any stack of transformations, symbolic zero tangents, the
linearize trace, and what happens to a tracer once its transformation is over."""
import itertools

import numpy as np
import pytest

import parity


def show(x):
    print(repr(x))
    return x


@pytest.mark.parametrize("name, run", [
    ("jit", lambda jax, jnp: jax.jit(show)(1.0)),
    ("make_jaxpr", lambda jax, jnp: jax.make_jaxpr(show)(jnp.ones(3, jnp.int32))),
    ("jvp", lambda jax, jnp: jax.jvp(show, (1.0,), (2.0,))),
    ("grad", lambda jax, jnp: jax.grad(show)(1.0)),
    ("vjp", lambda jax, jnp: jax.vjp(show, jnp.ones(2))[0]),
    ("linearize", lambda jax, jnp: jax.linearize(show, 3.0)[0]),
    ("vmap", lambda jax, jnp: jax.vmap(show)(jnp.ones((2, 3)))),
    ("jit_of_jvp", lambda jax, jnp: jax.jit(lambda x: jax.jvp(show, (x,), (x,)))(1.0)),
    ("vmap_of_grad", lambda jax, jnp: jax.vmap(jax.grad(show))(jnp.ones(2))),
    ("grad_of_vmap", lambda jax, jnp: jax.grad(lambda x: jax.vmap(show)(x).sum())(jnp.ones(2))),
    ("jvp_of_jvp", lambda jax, jnp: jax.jvp(lambda x: jax.jvp(show, (x,), (x,))[1],
                                            (1.0,), (1.0,))),
])
def test_tracers_print_as_in_jax(name, run):
    parity.assert_same(run)


def show_type(x):
    print(x.shape, x.dtype, x.weak_type, x.ndim, x.size)
    return x


@pytest.mark.parametrize("transform", [
    lambda jax, jnp, f: jax.jit(f)(1.0),
    lambda jax, jnp, f: jax.jvp(f, (jnp.ones(3),), (jnp.ones(3),)),
    lambda jax, jnp, f: jax.grad(f)(2.0),
    lambda jax, jnp, f: jax.vmap(f)(jnp.ones((2, 3), jnp.int32)),
], ids=["jit", "jvp", "grad", "vmap"])
def test_a_tracer_has_the_type_attributes_of_its_aval(transform):
    parity.assert_same(lambda jax, jnp: transform(jax, jnp, show_type))


def closure_example(jax, jnp, outer):
    """The issue's example: a rule closes over x, traced by a vmap around it."""
    def h(z):
        def per_example(x):
            @jax.custom_jvp
            def g(y):
                return x * y

            @g.defjvp
            def g_jvp(primals, tangents):
                return x * primals[0], 3.0 * x * tangents[0]
            return g(z)
        return jax.vmap(per_example)(jnp.array([0.0, 1.0, 2.0]))
    return outer(jax, h)


OUTER = {
    "jvp": lambda jax, h: jax.jvp(h, (1.0,), (2.0,)),
    "grad": lambda jax, h: jax.grad(lambda z: h(z).sum())(1.0),
    "jit_jvp": lambda jax, h: jax.jit(lambda z: jax.jvp(h, (z,), (2.0,)))(1.0),
    "jvp_jit": lambda jax, h: jax.jvp(jax.jit(h), (1.0,), (2.0,)),
    "vmap_jvp": lambda jax, h: jax.vmap(lambda z: jax.jvp(h, (z,), (2.0,)))(
        jax.numpy.array([1.0, 2.0])),
    "jvp_vmap": lambda jax, h: jax.jvp(jax.vmap(h), (jax.numpy.array([1.0, 2.0]),),
                                       (jax.numpy.array([2.0, 3.0]),)),
}


@pytest.mark.parametrize("outer", OUTER)
def test_a_rule_closing_over_a_batched_value_works_under_any_transformation(outer):
    parity.assert_same(lambda jax, jnp: closure_example(jax, jnp, OUTER[outer]))


def closing_over_in(jax, jnp, order):
    """A custom_jvp function closing over c, a value of each transformation around it."""
    def f(x):
        c = jnp.tanh(x)

        @jax.custom_jvp
        def g(z):
            return c * z
        g.defjvp(lambda p, t: (c * p[0], c * t[0]))
        return g(2.0) + g(x)

    wrap = {"jit": lambda f: jax.jit(f), "vmap": lambda f: jax.vmap(f),
            "jvp": lambda f: lambda x: jax.jvp(f, (x,), (jnp.ones_like(x),))[1]}
    for name in order:
        f = wrap[name](f)
    return f(jnp.array([[0.5, 1.0], [1.5, -2.0]]) if order.count("vmap") == 2
             else jnp.array([0.5, 1.0]) if "vmap" in order else 0.5)


STACKS = [stack for n in (1, 2) for stack in itertools.product(["jit", "vmap"], repeat=n)]


@pytest.mark.parametrize("order", STACKS, ids="-".join)
def test_closing_over_values_of_jit_and_vmap(order):
    parity.assert_same(lambda jax, jnp: closing_over_in(jax, jnp, order))


def test_differentiating_with_respect_to_a_closed_over_value_is_an_unexpected_tracer():
    def run(jax, jnp):
        def f(y):
            @jax.custom_jvp
            def g(x):
                return x * y
            g.defjvp(lambda p, t: (p[0] * y, t[0] * y))
            return g(2.0)
        for transform in (lambda: jax.grad(f)(3.0), lambda: jax.jvp(f, (3.0,), (1.0,))):
            try:
                transform()
            except jax.errors.UnexpectedTracerError as e:
                print(str(e).split("\n")[0][:40])
    parity.assert_same(run)


def test_zero_tangents_are_symbolic():
    # The exponent's tangent is zero: log(-2.) is never computed.
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: x ** 2.0, (-2.0,), (1.0,)))
    parity.assert_same(lambda jax, jnp: jax.linearize(lambda x: x ** 2.0, -2.0)[1](1.0))
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x: jax.jvp(
        lambda y: y ** 2.0, (x,), (1.0,))[1])(-2.0))


@pytest.mark.parametrize("f, args", [
    (lambda jax, jnp: lambda x, t: jax.jvp(lambda x: jnp.sin(x) * 2.0, (x,), (t,)), (1.0, 1.0)),
    (lambda jax, jnp: lambda x: jax.linearize(lambda x: jnp.sin(x) * 2.0, x)[1](x), (1.0,)),
    (lambda jax, jnp: jax.grad(lambda x: jnp.sin(x) * x), (1.0,)),
    (lambda jax, jnp: jax.grad(lambda x: x * x), (1.0,)),
    (lambda jax, jnp: lambda x, t: jax.jvp(lambda x: x ** 2.0, (x,), (t,)), (1.0, 1.0)),
], ids=["jvp", "linearize", "grad_product", "grad_square", "jvp_pow"])
def test_derivative_jaxprs_carry_no_work_on_zeros(f, args):
    parity.assert_same(lambda jax, jnp: print(jax.make_jaxpr(f(jax, jnp))(*args)))


def test_a_tracer_used_after_its_transformation_is_an_unexpected_tracer():
    def run(jax, jnp):
        saved = []
        jax.jit(lambda x: saved.append(x) or x)(1.0)
        try:
            jnp.sin(saved[0])
        except jax.errors.UnexpectedTracerError as e:
            print(str(e).split(".")[0])
    parity.assert_same(run)


def tanh_with_custom_vjp(jax, jnp):
    @jax.custom_vjp
    def f(x):
        return jnp.tanh(x)
    f.defvjp(lambda x: (jnp.tanh(x), x), lambda x, g: (g * (1 - jnp.tanh(x) ** 2),))
    return f


def test_grad_through_jit_of_a_custom_vjp_of_a_constant():
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x, y: jax.jit(
        lambda x, y: tanh_with_custom_vjp(jax, jnp)(y))(x, y))(1.0, 2.0))


def while_loop_of(jax, x):
    return jax.lax.while_loop(lambda c: c < 3.0, lambda c: c * 2.0, x)


def test_linearize_of_a_while_loop_works_and_transposing_it_does_not():
    parity.assert_same(lambda jax, jnp: jax.linearize(lambda x: while_loop_of(jax, x), 1.0)[1](1.0))
    parity.assert_same(lambda jax, jnp: jax.jvp(jax.jit(lambda x: while_loop_of(jax, x) * x),
                                                (1.0,), (1.0,)))

    def grad_raises(jax, jnp):
        try:
            jax.grad(lambda x: while_loop_of(jax, x))(1.0)
        except ValueError as e:
            print(e)
    parity.assert_same(grad_raises)


def test_a_while_loop_whose_result_is_unused_does_not_stop_grad():
    parity.assert_same(lambda jax, jnp: jax.grad(
        lambda x: (while_loop_of(jax, x), x * 2.0)[1])(1.0))
    parity.assert_same(lambda jax, jnp: jax.grad(jax.jit(
        lambda x: (while_loop_of(jax, x), x * 2.0)[1]))(1.0))


def test_a_while_loop_closing_over_the_differentiated_input():
    def loop(jax, x):
        return jax.lax.while_loop(lambda c: c < 10.0, lambda c: c * x + 1.0, 1.0)
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x: (loop(jax, x), jnp.sin(x))[1])(2.0))
    parity.assert_same(lambda jax, jnp: jax.linearize(lambda x: loop(jax, x), 2.0)[1](1.0))
    parity.assert_same(lambda jax, jnp: jax.linearize(jax.jit(lambda x: loop(jax, x)), 2.0)[1](1.0))


# ---------------------------------------------------------------------------
# Indexing with negative steps: JAX slices the same entries in increasing order,
# then reverses them with `rev`.

V5 = np.arange(5.0, dtype=np.float32)
M34 = np.arange(12.0, dtype=np.float32).reshape(3, 4) - 5.0


@pytest.mark.parametrize("index", [np.s_[::-1], np.s_[::-2], np.s_[3:0:-1], np.s_[1:2:-1],
                                   np.s_[-1:-6:-2], np.s_[:]])
def test_negative_slice_steps_stage_rev(index):
    parity.assert_same(lambda jax, jnp: print(jax.make_jaxpr(lambda x: x[index])(V5)))
    parity.assert_same(lambda jax, jnp: jnp.asarray(V5)[index])


@pytest.mark.parametrize("index", [np.s_[::-1], np.s_[:, ::-1], np.s_[::-1, 1],
                                   np.s_[..., ::-3], np.s_[2:0:-1, ::-2]])
def test_rev_under_transformations(index):
    parity.assert_same(lambda jax, jnp: jax.grad(
        lambda x: jnp.sum(jnp.sin(x[index]) * jnp.cos(x)[index]))(M34))
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: x[index] * x[index], (M34,), (M34,)))
    parity.assert_same(lambda jax, jnp: jax.vmap(lambda x: x[index], in_axes=2)(
        np.stack([M34, 2 * M34], 2)))
    parity.assert_same(lambda jax, jnp: jax.jit(jax.vmap(lambda x: jnp.cos(x[index])))(
        np.stack([M34, 2 * M34])))


# ---------------------------------------------------------------------------
# Generated code, literals and weak types.


def test_jit_of_inf_and_nan_literals():
    parity.assert_same(lambda jax, jnp: jax.jit(jnp.isfinite)(np.array([1.0, np.inf, np.nan])))
    parity.assert_same(lambda jax, jnp: jax.jit(jnp.isinf)(np.array([1.0, -np.inf, np.nan])))
    parity.assert_same(lambda jax, jnp: jax.jit(
        lambda x: jnp.maximum(x, -jnp.inf) + jnp.minimum(x, jnp.inf) * jnp.nan)(V5))


def test_a_literal_operand_of_a_jaxpr_is_no_parameter_of_its_parts():
    # The literal predicate of the cond is a known input of the linearized jit.
    def cond_of(jax, jnp):
        return lambda a: jax.lax.cond(True, jnp.sin, jnp.sin, a)
    parity.assert_same(lambda jax, jnp: jax.linearize(jax.jit(cond_of(jax, jnp)), 0.5)[1](1.0))
    parity.assert_same(lambda jax, jnp: jax.grad(jax.jit(cond_of(jax, jnp)))(0.5))


@pytest.mark.parametrize("fn", ["isfinite", "isinf", "isnan"])
@pytest.mark.parametrize("x", [3, 3.0, np.int32(3), np.float32(3.0), V5])
def test_float_predicates_have_jax_weak_types(fn, x):
    parity.assert_same(lambda jax, jnp: getattr(jnp, fn)(x))


@pytest.mark.parametrize("x", [3, 3.0, V5])
def test_isfinite_is_a_primitive_of_floats(x):
    parity.assert_same(lambda jax, jnp: print(jax.make_jaxpr(jnp.isfinite)(x)))


# ---------------------------------------------------------------------------
# Integers and booleans have zero tangents: no tangent arithmetic is done on them.


@pytest.mark.parametrize("f", [
    lambda jax, jnp: jax.grad(jax.grad(lambda x: jnp.sin(jnp.max(x > 0.0))))(0.5),
    lambda jax, jnp: jax.grad(lambda x: x.astype(jnp.int32) * 1.0)(1.5),
    lambda jax, jnp: jax.jvp(lambda x: x.astype(jnp.int32) * 1.0, (1.5,), (1.0,)),
    lambda jax, jnp: jax.linearize(lambda x: x.astype(jnp.int32) * x, 1.5)[1](1.0),
    lambda jax, jnp: jax.jvp(lambda x: jnp.max(x.astype(jnp.int32)) * x, (V5,), (V5,)),
    lambda jax, jnp: jax.grad(jax.jit(lambda y: jnp.sum(y.astype(jnp.int32) * y)))(V5),
])
def test_integer_and_boolean_values_carry_no_tangent(f):
    parity.assert_same(f)


# ---------------------------------------------------------------------------
# fori_loop with static bounds gives Arrays, as JAX's staged loop does.


def test_fori_loop_returns_arrays():
    parity.assert_same(lambda jax, jnp: print(repr(
        jax.lax.fori_loop(0, 0, lambda i, a: a * 2.0, 0.0))))
    parity.assert_same(lambda jax, jnp: print(type(jax.lax.fori_loop(
        0, 2, lambda i, a: a * 2.0, V5)).__name__ in ("Array", "ArrayImpl")))


def test_power_counts_booleans_as_integers():
    def run(jax, jnp):
        t = jnp.array([True, False])
        return jnp.power(t, t), jnp.power(t, 2), jnp.power(True, t), jnp.power(2, t), t ** 2.0
    parity.assert_same(run)
