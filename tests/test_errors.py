"""minijax raises the exceptions JAX raises, and its messages carry the key facts.

parity.assert_same compares the type names of the two exceptions; each test then
checks minijax's own exception for the facts a reader needs (the shape, the dtype,
the offending sizes...). Messages are not compared word for word, except where
``same_message`` compares them (messages JAX's users meet often, written in full).
"""

from __future__ import annotations

import functools
import operator

import numpy as np
import pytest

import minijax
import minijax.numpy as mjnp
import parity

V = np.array([0.3, -1.2, 2.5], np.float32)
V4 = np.ones(4, np.float32)
M23 = np.ones((2, 3), np.float32)


def raises_as_in_jax(fn, type_name: str, *facts: str) -> BaseException:
    """``fn(lib, lib.numpy)`` raises ``type_name`` on both; minijax's message has ``facts``."""
    parity.assert_same(fn)  # same exception type on both sides, or neither raises
    with pytest.raises(Exception) as caught:
        fn(minijax, mjnp)
    error = caught.value
    assert type(error).__name__ == type_name, f"{type(error).__name__}: {error}"
    for fact in facts:
        assert fact in str(error), f"{fact!r} not in {str(error)!r}"
    return error


# ---------------------------------------------------------------------------
# grad


def test_grad_of_a_non_scalar_output():
    raises_as_in_jax(lambda jax, jnp: jax.grad(jnp.sin)(V), "TypeError", "scalar", "(3,)")
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda x: [x])(1.0), "TypeError", "scalar")
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda x: (x, x))(1.0), "TypeError", "scalar")


def test_grad_with_respect_to_an_integer():
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda x: x * 2.0)(3), "TypeError", "int32")
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda x: x * 2.0)(np.arange(3)[0]),
                     "TypeError", "int32")
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda p: p["a"] * 1.0)({"a": 1, "b": 2.0}),
                     "TypeError", "int32")
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda x, n: x * n, argnums=1)(1.0, 2),
                     "TypeError", "int32")


def test_grad_of_an_integer_output():
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda x: jnp.sum(x > 0))(V), "TypeError", "int32")


def test_grad_argnums_out_of_range():
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda x: x, argnums=2)(1.0),
                     "TypeError", "argnums=2", "1 positional")


def test_vmap_of_no_arguments():
    raises_as_in_jax(lambda jax, jnp: jax.vmap(lambda: 1.)(), "ValueError",
                     "must be passed at least one argument containing an array")


def test_has_aux_without_a_pair():
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda x: x, has_aux=True)(1.0), "TypeError")


# ---------------------------------------------------------------------------
# Concrete values needed while only abstract ones exist


def test_python_if_on_a_traced_value():
    def under_jit(jax, jnp):
        return jax.jit(lambda x: x if x > 0 else -x)(1.0)

    def under_vmap(jax, jnp):
        return jax.vmap(lambda x: x if x > 0 else -x)(V)

    def while_loop(jax, jnp):
        def f(x):
            while x < 10.0:
                x = x * 2.0
            return x
        return jax.jit(f)(1.0)

    for fn in [under_jit, under_vmap, while_loop]:
        error = raises_as_in_jax(fn, "TracerBoolConversionError", "bool[]")
        assert isinstance(error, minijax.errors.ConcretizationTypeError)
        assert isinstance(error, TypeError)


def test_python_if_on_a_jvp_or_grad_value_works_as_in_jax():
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x: x if x > 0 else -x)(-2.0))
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: jnp.sin(x) if x < 1 else x, (0.5,), (1.0,)))
    parity.assert_same(lambda jax, jnp: jax.vmap(lambda x, n: x * n if n > 1 else -x,
                                                  in_axes=(0, None))(V, 2))


def test_float_and_int_of_a_tracer():
    raises_as_in_jax(lambda jax, jnp: jax.jit(lambda x: float(x))(1.0),
                     "ConcretizationTypeError", "float", "f32[]")
    raises_as_in_jax(lambda jax, jnp: jax.jit(lambda x: int(x))(1),
                     "ConcretizationTypeError", "int", "i32[]")
    raises_as_in_jax(lambda jax, jnp: jax.vmap(lambda x: float(x))(V), "ConcretizationTypeError")


@pytest.mark.parametrize("transform", ["grad", "jvp"])
def test_float_of_a_differentiated_value(transform):
    def run(jax, jnp):
        f = lambda x: x * float(x)  # noqa: E731
        return jax.grad(f)(3.0) if transform == "grad" else jax.jvp(f, (3.0,), (1.0,))
    raises_as_in_jax(run, "ConcretizationTypeError", "float")


def test_int_and_bool_of_a_differentiated_value_work_as_in_jax():
    parity.assert_same(lambda jax, jnp: jax.grad(lambda x: x * int(x) if x else x)(3.0))
    parity.assert_same(lambda jax, jnp: jax.jvp(lambda x: x ** int(x), (2.0,), (1.0,)))


def test_index_of_a_tracer():
    raises_as_in_jax(lambda jax, jnp: jax.jit(lambda x: operator.index(x))(1),
                     "TracerIntegerConversionError")


def test_range_of_a_tracer():
    raises_as_in_jax(lambda jax, jnp: jax.jit(lambda n: list(range(n)))(3),
                     "TracerIntegerConversionError")


def test_item_of_a_tracer():
    raises_as_in_jax(lambda jax, jnp: jax.jit(lambda x: x.item())(1.0), "ConcretizationTypeError")


def test_numpy_conversion_of_a_tracer():
    raises_as_in_jax(lambda jax, jnp: jax.jit(lambda x: np.asarray(x))(V),
                     "TracerArrayConversionError", "__array__", "f32[3]")
    raises_as_in_jax(lambda jax, jnp: jax.jit(lambda x: np.sin(x))(V), "TracerArrayConversionError")
    raises_as_in_jax(lambda jax, jnp: jax.grad(lambda x: np.asarray(x))(1.0),
                     "TracerArrayConversionError")
    raises_as_in_jax(lambda jax, jnp: jax.vmap(lambda x: np.asarray(x))(V),
                     "TracerArrayConversionError")


def test_error_classes_are_related_as_in_jax():
    names = ["ConcretizationTypeError", "TracerBoolConversionError",
             "TracerArrayConversionError", "UnexpectedTracerError"]

    def run(jax, jnp):
        classes = [getattr(jax.errors, name) for name in names]
        return [[issubclass(a, b) for b in classes + [TypeError]] for a in classes]

    parity.assert_same(run)


@pytest.mark.parametrize("run", [
    lambda jax, jnp: jax.jit(lambda x: bool(x))(1.0),
    lambda jax, jnp: jax.jit(lambda x: float(x))(1.0),
    lambda jax, jnp: jax.jit(lambda x: np.asarray(x))(1.0),
    lambda jax, jnp: jax.jit(lambda n: range(n))(3),
])
def test_jax_errors_end_with_a_link_to_their_page(run):
    def last_line(jax, jnp):
        try:
            run(jax, jnp)
        except TypeError as error:
            return str(error).splitlines()[-1]
    assert parity.assert_same(last_line).startswith("See https://docs.jax.dev/")


# ---------------------------------------------------------------------------
# Leaked tracers


def leak(jax, jnp, transform):
    leaked = []

    def f(x):
        leaked.append(x)
        return x * 2.0

    if transform == "jit":
        jax.jit(f)(1.0)
    elif transform == "grad":
        jax.grad(f)(1.0)
    elif transform == "vmap":
        jax.vmap(f)(V)
    elif transform == "jvp":
        jax.jvp(f, (1.0,), (1.0,))
    elif transform == "linearize":
        jax.linearize(f, 1.0)
    return leaked[0]


@pytest.mark.parametrize("transform", ["jit", "grad", "vmap", "jvp", "linearize"])
@pytest.mark.parametrize("use", [
    lambda jax, jnp, t: t + 1.0,
    lambda jax, jnp, t: jnp.sin(t),
    lambda jax, jnp, t: jax.jit(lambda y: y * t)(2.0),  # closed over by a new jit
    lambda jax, jnp, t: jax.grad(lambda y: y * t)(2.0),
], ids=["add", "sin", "jit", "grad"])
def test_a_leaked_tracer_used_later(transform, use):
    error = raises_as_in_jax(lambda jax, jnp: use(jax, jnp, leak(jax, jnp, transform)),
                             "UnexpectedTracerError", "unexpected tracer")
    assert isinstance(error, minijax.errors.UnexpectedTracerError)


@pytest.mark.parametrize("transform", ["grad", "jvp", "linearize"])
def test_a_leaked_tracer_is_a_constant_of_a_later_jaxpr(transform):
    """Forward and reverse mode leave their traces valid when they end, as JAX's do:
    a tracer they leaked is staged as a constant, and refused only when computed with."""
    def staged(jax, jnp):
        return str(jax.make_jaxpr(lambda y: y * leak(jax, jnp, transform))(2.0))
    assert parity.assert_same(staged).startswith("{ lambda a:f32[]; b:f32[]. let")


def test_a_tracer_leaked_by_jit_is_refused_by_a_later_staging():
    """A simplification listed in "Jaxprs and jit": minijax invalidates a finished
    staging trace, so make_jaxpr refuses a tracer that jit leaked. JAX's staging trace
    stays valid, and JAX prints a jaxpr holding the tracer as a constant."""
    import jax

    def staged(jax, jnp):
        return str(jax.make_jaxpr(lambda y: y * leak(jax, jnp, "jit"))(2.0))
    with pytest.raises(minijax.errors.UnexpectedTracerError, match="DynamicJaxprTracer"):
        staged(minijax, mjnp)
    assert "mul b a" in staged(jax, jax.numpy)


@pytest.mark.parametrize("transform", ["grad", "vmap", "jvp", "linearize"])
def test_a_leaked_tracer_message(transform):
    """JAX's message in full. (For a tracer leaked by jit, JAX also says where the
    tracer was made, which minijax does not record.)"""
    same_message(lambda jax, jnp: leak(jax, jnp, transform) + 1.0)


# ---------------------------------------------------------------------------
# vmap


def test_vmap_with_inconsistent_sizes():
    raises_as_in_jax(lambda jax, jnp: jax.vmap(lambda x, y: x + y)(V, V4),
                     "ValueError", "inconsistent sizes", "3", "4")
    raises_as_in_jax(lambda jax, jnp: jax.vmap(lambda p: p["a"] * p["b"])({"a": V, "b": V4}),
                     "ValueError", "inconsistent sizes")


def test_vmap_without_a_mapped_axis():
    raises_as_in_jax(lambda jax, jnp: jax.vmap(lambda x: x, in_axes=None)(V),
                     "ValueError", "in_axes")
    raises_as_in_jax(lambda jax, jnp: jax.vmap(lambda x, y: x, in_axes=(None, None))(V, V),
                     "ValueError", "in_axes")


@pytest.mark.parametrize("run", [
    lambda jax, jnp: jax.vmap(lambda x: x, in_axes=1)(V),
    lambda jax, jnp: jax.vmap(lambda x: x, in_axes=-2)(V),
    lambda jax, jnp: jax.vmap(lambda x: x)(1.0),
    lambda jax, jnp: jax.vmap(lambda x: x, out_axes=1)(V),
    lambda jax, jnp: jax.vmap(lambda x: x, out_axes=-2)(V),
    lambda jax, jnp: jax.vmap(lambda x: 1.0, out_axes=2)(V),  # an output not batched
    lambda jax, jnp: jax.vmap(lambda x: {"a": (x, x)}, out_axes={"a": (0, 3)})(M23),
    lambda jax, jnp: jax.vmap(lambda x: x * 2.0, out_axes=None)(V),
    lambda jax, jnp: jax.vmap(lambda x: {"a": (x, x)}, out_axes={"a": (0, None)})(V),
    lambda jax, jnp: jax.vmap(lambda x: x, out_axes=1.5),
    lambda jax, jnp: jax.vmap(lambda x: x, in_axes=(0, 0.5)),
    lambda jax, jnp: jax.vmap(lambda x: x, in_axes={"x": 0}),
])
def test_vmap_axis_messages(run):
    same_message(run)


def test_vmap_in_axes_of_the_wrong_length():
    raises_as_in_jax(lambda jax, jnp: jax.vmap(lambda x, y: x, in_axes=(0, 0, 0))(V, V),
                     "ValueError", "len(in_axes)=3", "len(args)=2")


# ---------------------------------------------------------------------------
# jvp, vjp, linearize


def test_jvp_with_mismatched_structures():
    raises_as_in_jax(lambda jax, jnp: jax.jvp(lambda x, y: x * y, (1.0, 2.0), (1.0,)),
                     "TypeError", "tree structure")
    raises_as_in_jax(lambda jax, jnp: jax.jvp(lambda p: p["a"], ({"a": 1.0},), ({"b": 1.0},)),
                     "TypeError", "tree structure")
    raises_as_in_jax(lambda jax, jnp: jax.jvp(jnp.sin, V, V), "TypeError", "tuples or lists")


def test_jvp_with_mismatched_shapes_or_dtypes():
    raises_as_in_jax(lambda jax, jnp: jax.jvp(jnp.sin, (V,), (V4,)),
                     "ValueError", "(3,)", "(4,)")
    raises_as_in_jax(lambda jax, jnp: jax.jvp(jnp.sin, (V,), (np.ones(3, np.int32),)),
                     "TypeError", "float32", "int32")


@pytest.mark.parametrize("run", [
    lambda jax, jnp: jax.jvp(jnp.sin, V, V),
    lambda jax, jnp: jax.jvp(lambda x, y: x * y, (1.0, 2.0), (1.0,)),
    lambda jax, jnp: jax.jvp(jnp.sin, (V,), (V4,)),
    lambda jax, jnp: jax.jvp(jnp.sin, (V,), (np.ones(3, np.int32),)),
    lambda jax, jnp: jax.jvp(jnp.sin, (V,), (np.ones(4, np.int32),)),  # dtypes checked first
])
def test_jvp_argument_messages(run):
    same_message(run)


def test_vjp_with_a_cotangent_of_the_wrong_shape():
    raises_as_in_jax(lambda jax, jnp: jax.vjp(jnp.sin, V)[1](V4), "ValueError", "float32[4]")


def test_vjp_with_a_cotangent_of_the_wrong_structure():
    raises_as_in_jax(lambda jax, jnp: jax.vjp(lambda x: (x, x), V)[1](V), "ValueError")


def test_linearized_function_with_the_wrong_tangents():
    raises_as_in_jax(lambda jax, jnp: jax.linearize(jnp.sin, 1.0)[1](1.0, 2.0), "TypeError")


# ---------------------------------------------------------------------------
# jit


def test_jit_of_a_non_array_argument():
    raises_as_in_jax(lambda jax, jnp: jax.jit(lambda x, s: x)(1.0, "a"), "TypeError", "str")


def test_jit_with_an_unhashable_static_argument():
    raises_as_in_jax(lambda jax, jnp: jax.jit(lambda x, n: x, static_argnums=1)(1.0, V),
                     "ValueError")


# ---------------------------------------------------------------------------
# Arrays


def test_indexing_errors():
    raises_as_in_jax(lambda jax, jnp: jnp.ones(3)[1, 2], "IndexError", "1-dimensional", "2")
    raises_as_in_jax(lambda jax, jnp: jnp.ones(3)[1.5], "TypeError")


@pytest.mark.parametrize("index", [5, -5])
def test_index_out_of_bounds_is_clamped(index):
    parity.assert_same(lambda jax, jnp: jnp.arange(3.0)[index])


def test_shape_errors():
    raises_as_in_jax(lambda jax, jnp: jnp.reshape(jnp.ones(6), (4,)), "TypeError", "(4,)")
    raises_as_in_jax(lambda jax, jnp: jnp.dot(jnp.ones(3), jnp.ones(4)), "TypeError")
    raises_as_in_jax(lambda jax, jnp: jnp.ones((2, 3)) @ jnp.ones((2, 3)), "TypeError")
    raises_as_in_jax(lambda jax, jnp: jnp.where(jnp.ones(3) > 0, jnp.ones(4), 0.0), "ValueError")


@pytest.mark.parametrize("run", [
    lambda jax, jnp: jnp.ones(3) + jnp.ones(4),  # one rank: lax's TypeError
    lambda jax, jnp: jnp.ones((2, 3)) * jnp.ones(2),  # two ranks: a ValueError
    lambda jax, jnp: jnp.subtract(jnp.ones((2, 3)), np.ones((4, 1, 2), np.float32)),
    lambda jax, jnp: jnp.power(jnp.ones((2, 3)), jnp.ones(2)),
    lambda jax, jnp: jnp.divide(jnp.ones(3), jnp.ones(4)),
    lambda jax, jnp: jnp.ones((2, 3)) < jnp.ones(2),
    lambda jax, jnp: jnp.clip(jnp.ones(2), 0.0, jnp.ones(3)),
    lambda jax, jnp: jnp.where(jnp.ones(3) > 0, jnp.ones(4), 0.0),
])
def test_binary_operation_on_shapes_that_do_not_broadcast(run):
    same_message(run)


@pytest.mark.parametrize("run", [
    lambda jax, jnp: jnp.stack([jnp.ones(2), 1.0]),
    lambda jax, jnp: jnp.stack([jnp.ones(2), jnp.ones(1)]),
    lambda jax, jnp: jnp.stack([]),
])
def test_stacking_arrays_of_different_shapes(run):
    same_message(run)  # no broadcasting, unlike most functions of two arrays


def test_broadcast_to_an_incompatible_shape():
    same_message(lambda jax, jnp: jnp.broadcast_to(jnp.ones(3), (2, 4)))


@pytest.mark.parametrize("reduce", ["sum", "max"])
@pytest.mark.parametrize("axis", [2, -3])
def test_reduction_axis_out_of_bounds(reduce, axis):
    raises_as_in_jax(lambda jax, jnp: getattr(jnp, reduce)(jnp.ones((2, 3)), axis=axis),
                     "ValueError")


def test_python_protocols_on_arrays():
    raises_as_in_jax(lambda jax, jnp: len(jnp.array(1.0)), "TypeError", "unsized")
    raises_as_in_jax(lambda jax, jnp: bool(jnp.ones(3)), "ValueError", "ambiguous")
    raises_as_in_jax(lambda jax, jnp: hash(jnp.ones(3)), "TypeError", "unhashable")
    raises_as_in_jax(lambda jax, jnp: list(jnp.array(1.0)), "TypeError")
    parity.assert_same(lambda jax, jnp: [bool(jnp.array(2.0)), float(jnp.float32(1.5)),
                                         int(jnp.arange(3)[2]), len(jnp.ones((4, 2))),
                                         jnp.array(1.5).item(), jnp.arange(3).tolist()])


# ---------------------------------------------------------------------------
# Messages compared word for word


def same_message(run) -> None:
    """``run(lib, lib.numpy)`` raises the same exception, with the same message, on both."""
    def printed(jax, jnp):
        try:
            run(jax, jnp)
        except Exception as error:  # noqa: BLE001  (its type and text are compared)
            print(type(error).__name__, error)
        else:
            print("no error")
    parity.assert_same(printed)


def pair(a, b):
    return a, b


@pytest.mark.parametrize("run", [
    lambda jax, jnp: jax.lax.cond(True, lambda a: a * 2.0, lambda a: a > 0.0, V),
    lambda jax, jnp: jax.lax.cond(True, lambda a: a, lambda a: a[0], V),
    lambda jax, jnp: jax.lax.cond(True, lambda a: (a, a * 2.0), lambda a: (a > 0.0, a[:2]), V),
    lambda jax, jnp: jax.lax.cond(True, lambda a: {"u": a, "v": 1.0},
                                  lambda a: {"u": a[:1] > 0, "v": 1}, V),
    lambda jax, jnp: jax.lax.cond(True, functools.partial(pair, 1.0), lambda a: (a, a > 0), V),
])
def test_cond_branch_type_message(run):
    same_message(run)


@pytest.mark.parametrize("run", [
    lambda jax, jnp: jax.lax.while_loop(lambda c: c[0] < 1, lambda c: (
        c[0] + 1, jnp.stack([c[1], c[1]])), (0, V)),
    lambda jax, jnp: jax.lax.while_loop(lambda s: False, lambda s: s > 0, V),
    lambda jax, jnp: jax.lax.while_loop(lambda s: False, lambda *s: s[0] > 0, V),
    lambda jax, jnp: jax.lax.while_loop(lambda s: False, lambda s: {
        "a": s["a"] > 0, "b": jnp.stack([s["b"]] * 2), "c": s["c"]}, {"a": V, "b": V, "c": 1}),
    lambda jax, jnp: jax.lax.while_loop(lambda s: False, lambda s: (
        s[0] > 0, s[1][:1] > 0, s[0]), (V, V, V)),
])
def test_while_loop_carry_type_message(run):
    same_message(run)


@pytest.mark.parametrize("run", [
    lambda jax, jnp: jnp.arange(3) ** -1,
    lambda jax, jnp: jax.jit(lambda x: x ** -2)(3),
    lambda jax, jnp: jax.lax.integer_pow(jnp.int32(3), -1),
])
def test_integers_raised_to_negative_powers(run):
    same_message(run)


def closed_over_by_a_custom_vjp(jax, jnp, x, y):
    c = jnp.mean(y)
    h = jax.custom_vjp(lambda a: jnp.sin(a) * c)
    h.defvjp(lambda a: (jnp.sin(a) * c, jnp.cos(a) * c), lambda r, g: (r * g,))
    return jnp.sum(h(x))


@pytest.mark.parametrize("transform", [
    lambda jax, f: jax.grad(jax.jit(f), argnums=1),
    lambda jax, f: jax.grad(jax.jit(f), argnums=(0, 1)),
    lambda jax, f: jax.jit(jax.grad(jax.jit(f), argnums=1)),
])
def test_differentiating_a_staged_custom_vjp_with_respect_to_a_closed_over_value(transform):
    same_message(lambda jax, jnp: transform(
        jax, functools.partial(closed_over_by_a_custom_vjp, jax, jnp))(V, V4))


def test_differentiating_a_custom_vjp_with_respect_to_a_closed_over_value_unstaged():
    raises_as_in_jax(lambda jax, jnp: jax.grad(functools.partial(
        closed_over_by_a_custom_vjp, jax, jnp), argnums=1)(V, V4), "UnexpectedTracerError")


@pytest.mark.parametrize("run", [
    lambda jax, jnp: jax.jit(jnp.subtract)(jnp.array([True]), jnp.array([False])),
    lambda jax, jnp: jax.jit(lambda b: (b - b, b)[1])(jnp.array([True])),  # unused
    lambda jax, jnp: jax.jit(jnp.negative)(jnp.array([True])),
    lambda jax, jnp: jnp.subtract(jnp.array([True]), True),
    lambda jax, jnp: jax.lax.sign(jnp.array([True])),
], ids=["jit_subtract", "unused_subtract", "jit_negative", "subtract", "lax_sign"])
def test_booleans_refused_by_arithmetic(run):
    """Staged or not, used or not, JAX's type rule refuses the booleans."""
    same_message(run)


@pytest.mark.parametrize("make", [lambda jnp: jnp.int32(2), lambda jnp: jnp.array(2.),
                                  lambda jnp: jnp.zeros(())], ids=["int32", "array", "zeros"])
def test_an_array_made_inside_jit_is_concrete_in_minijax_only(make):
    """The listed difference scalar_constants_under_jit: JAX stages the arrays jax.numpy
    makes inside jit, so int() of one raises there; minijax makes them concrete."""
    import jax

    def run(jax, jnp):
        return jax.jit(lambda x: x + int(make(jnp)))(1.0)
    with pytest.raises(jax.errors.ConcretizationTypeError):
        run(jax, jax.numpy)
    assert float(run(minijax, mjnp)) == 1.0 + int(make(np))  # NumPy makes the same
