"""lax.scan, lax.map and fori_loop beside JAX, under every stack of one or two
transformations, with pytrees, closures, custom rules inside the body, and the errors."""
from functools import partial

import pytest

from parity import assert_same

X = [0.3, -0.7, 1.1]


def _pytree_scan(jax, jnp):
    """A scan with a pytree carry and pytree xs, closing over its argument."""
    def f(x):
        def body(carry, inputs):
            a, b = carry["a"], carry["b"]
            xi, wi = inputs
            a = jnp.sin(a) * xi + b[0] * 0.25
            b = b * jnp.cos(xi) + x * 0.5  # x: a traced value the body closes over
            return {"a": a, "b": b}, (a * wi, jnp.tanh(b))
        carry, (ys, zs) = jax.lax.scan(body, {"a": x[0], "b": x}, (x, x * 2.))
        return carry["b"] * carry["a"] + jnp.sum(ys) + jnp.sum(zs, 0)
    return f


# Each transformation turns a function of x (a float32[3]) into another one.
TRANSFORMS = {
    "jit": lambda jax, jnp, f: jax.jit(f),
    "grad": lambda jax, jnp, f: jax.grad(lambda x: jnp.sum(f(x))),
    "jvp": lambda jax, jnp, f: lambda x: jax.jvp(f, (x,), (jnp.cos(x),))[1],
    "linearize": lambda jax, jnp, f: lambda x: jax.linearize(f, x)[1](x * 0.5 + 1.),
    "vjp": lambda jax, jnp, f: lambda x: (lambda out, pull: pull(jnp.sin(out))[0])(
        *jax.vjp(f, x)),
    "vmap": lambda jax, jnp, f: lambda x: jax.vmap(f)(jnp.stack([x, x * 0.5 - 1.])),
}
STACKS = [(t,) for t in TRANSFORMS] + [(outer, inner) for outer in TRANSFORMS
                                       for inner in TRANSFORMS]


def _apply(stack, jax, jnp, f):
    for name in reversed(stack):  # the last transformation is applied first
        f = TRANSFORMS[name](jax, jnp, f)
    return f


@pytest.mark.parametrize("stack", STACKS, ids="-".join)
def test_scan_of_pytrees_under_transformations(stack):
    assert_same(lambda jax, jnp: _apply(stack, jax, jnp, _pytree_scan(jax, jnp))(jnp.array(X)))


def _reverse_scan(jax, jnp):
    def f(x):
        carry, ys = jax.lax.scan(lambda c, xi: (c * xi + jnp.sin(c), c * c), 1., x,
                                 reverse=True)
        return ys * carry
    return f


def _length_only(jax, jnp):
    """No xs: a number of iterations, and a carry that starts as a Python number."""
    def f(x):
        carry, ys = jax.lax.scan(lambda c, _: ((c[0] + 1, jnp.sin(c[1]) * x), c[1] * 2.),
                                 (0, x), length=4)
        return carry[1] + jnp.sum(ys, 0) * carry[0]
    return f


def _custom_jvp_body(jax, jnp):
    @jax.custom_jvp
    def soft(a):
        return jnp.log1p(jnp.exp(a))
    soft.defjvps(lambda t, ans, a: t / (1. + jnp.exp(-a)))
    return lambda x: jax.lax.scan(lambda c, xi: (soft(c * xi), soft(c) + xi), x[0], x)[1]


def _custom_vjp_body(jax, jnp):
    @jax.custom_vjp
    def clip_grad(a):
        return jnp.sin(a)

    def fwd(a):
        return jnp.sin(a), jnp.cos(a)

    def bwd(cos_a, g):
        return (jnp.clip(cos_a * g, -0.5, 0.5),)
    clip_grad.defvjp(fwd, bwd)
    return lambda x: jax.lax.scan(lambda c, xi: (clip_grad(c) * xi, c), x[1], x)[1]


def _unbatched_carry(jax, jnp):
    """A counter that vmap leaves unbatched, next to a carry that becomes batched
    only through the body (its initial value is not batched)."""
    def f(x):
        def body(carry, _):
            i, acc = carry
            return (i + 1, acc * 0.5 + x * i), acc
        return jax.lax.scan(body, (0, 0.), length=3)[1]
    return f


def _nested(jax, jnp):
    def f(x):
        def outer(c, xi):
            inner, ys = jax.lax.scan(lambda d, yi: (d * jnp.cos(yi) + c, d), c * xi, x)
            return inner, jnp.sum(ys)
        return jax.lax.scan(outer, 0.5, x)[1]
    return f


def _fori(jax, jnp):
    return lambda x: jax.lax.fori_loop(0, 3, lambda i, v: v * 0.9 + jnp.sin(v) * i, x)


def _lax_map(jax, jnp):
    return lambda x: jax.lax.map(lambda v: jnp.sin(v) * x, x)


def _lax_map_batched(jax, jnp):
    return lambda x: jax.lax.map(lambda v: jnp.sin(v) * jnp.sum(x),
                                 jax.lax.concatenate([x, x, x], 0), batch_size=4)


FUNCTIONS = {
    "reverse": _reverse_scan, "length_only": _length_only, "custom_jvp": _custom_jvp_body,
    "custom_vjp": _custom_vjp_body, "unbatched_carry": _unbatched_carry, "nested": _nested,
    "fori_loop": _fori, "map": _lax_map, "map_batch_size": _lax_map_batched,
}
SOME_STACKS = [(), ("jit",), ("grad",), ("jvp",), ("vmap",), ("linearize",), ("vjp",),
               ("jit", "grad"), ("grad", "grad"), ("vmap", "grad"), ("grad", "vmap"),
               ("jvp", "vmap"), ("vmap", "jvp"), ("jvp", "grad")]


@pytest.mark.parametrize("stack", SOME_STACKS, ids=lambda s: "-".join(s) or "eval")
@pytest.mark.parametrize("name", FUNCTIONS)
def test_scan_variants_under_transformations(name, stack):
    if name == "custom_vjp" and "jvp" in stack:
        pytest.skip("forward mode of a custom_vjp function is an error, tested elsewhere")
    assert_same(lambda jax, jnp: _apply(stack, jax, jnp, FUNCTIONS[name](jax, jnp))(
        jnp.array(X)))


def test_forward_mode_of_a_custom_vjp_inside_a_scan_is_refused():
    def run(jax, jnp):
        try:
            jax.jvp(_custom_vjp_body(jax, jnp), (jnp.array(X),), (jnp.ones(3),))
        except TypeError as e:
            print(e)
    assert_same(run)


PRINTED = {
    "scan": lambda jax, jnp: jax.make_jaxpr(lambda c, xs: jax.lax.scan(
        lambda c, x: (c + x, c * x), c, xs))(1., jnp.arange(3.)),
    "consts_reverse_unroll": lambda jax, jnp: (lambda a: jax.make_jaxpr(
        lambda c, xs: jax.lax.scan(lambda c, x: (c * a, (c + x, x)), c, xs, reverse=True,
                                   unroll=2))(jnp.ones(3), jnp.ones((4, 3))))(jnp.arange(3.)),
    "unroll_true": lambda jax, jnp: jax.make_jaxpr(lambda c: jax.lax.scan(
        lambda c, _: (c + 1., None), c, length=5, unroll=True))(1.),
    "fori_loop": lambda jax, jnp: jax.make_jaxpr(lambda x: jax.lax.fori_loop(
        0, 3, lambda i, v: v * 0.9 + jnp.sin(v), x))(1.),
    "fori_loop_traced_bounds": lambda jax, jnp: jax.make_jaxpr(lambda n, x: jax.lax.fori_loop(
        0, n, lambda i, v: v * 0.9, x))(3, 1.),
    "grad": lambda jax, jnp: jax.make_jaxpr(jax.grad(lambda c: jax.lax.scan(
        lambda c, _: (jnp.sin(c), None), c, length=5)[0]))(1.),
    "linearize": lambda jax, jnp: jax.make_jaxpr(lambda c: jax.linearize(
        lambda c: jax.lax.scan(lambda c, _: (jnp.sin(c), None), c, length=5)[0], c)[1](c))(1.),
    "jvp": lambda jax, jnp: jax.make_jaxpr(lambda c: jax.jvp(lambda c: jax.lax.scan(
        lambda c, _: (jnp.sin(c), None), c, length=5)[0], (c,), (c,)))(1.),
    "vmap": lambda jax, jnp: jax.make_jaxpr(jax.vmap(lambda c: jax.lax.scan(
        lambda c, _: (jnp.sin(c), None), c, length=5)[0]))(jnp.ones(3)),
    "map": lambda jax, jnp: jax.make_jaxpr(lambda xs: jax.lax.map(jnp.sin, xs))(jnp.ones(3)),
}


@pytest.mark.parametrize("name", PRINTED)
def test_jaxprs_print_as_jax_prints_them(name):
    assert_same(lambda jax, jnp: print(PRINTED[name](jax, jnp)))


def test_what_the_body_hands_back_unchanged_comes_out_as_it_went_in():
    # JAX takes a carry the body returns unchanged out of the loop, and a y that is
    # the body's x: a Python number comes back a Python number.
    assert_same(lambda jax, jnp: (
        jax.lax.scan(lambda c, x: (c, None), 0., length=0),
        jax.lax.scan(lambda c, x: [c, x], 0., jnp.ones(3)),
        jax.lax.fori_loop(0, 2, lambda i, v: v, 1.5)))


def test_ys_nobody_reads_are_not_differentiated():
    # The ys are unused, so their cotangent is a symbolic zero, and the transposed
    # body leaves out their operations: c * x with x = nan gives no nan gradient.
    import numpy as np
    xs = np.array([[0., 0., 0.], [0., 0., np.inf]], np.float32)
    assert_same(lambda jax, jnp: jax.grad(lambda xs: jnp.sum(jax.lax.scan(
        lambda c, x: (jnp.sin(c) + x, c * x), xs[0], jnp.sin(xs))[0]))(xs))


def test_carries_that_start_as_python_numbers_take_the_body_s_type():
    assert_same(lambda jax, jnp: (
        jax.lax.scan(lambda c, x: (c + 1, x), 0, jnp.ones(3)),
        jax.lax.scan(lambda c, x: (c + 1.5, x), 0, jnp.ones(3)),
        jax.jit(lambda x: jax.lax.fori_loop(0, 3, lambda i, c: c + i * x, 1))(0.5)))


def test_zero_iterations_and_numpy_inputs():
    import numpy as np
    assert_same(lambda jax, jnp: (
        jax.lax.scan(lambda c, x: (c + x, c * x), np.float32(1.), np.ones(0, np.float32)),
        jax.jvp(lambda x: jax.lax.fori_loop(0, 0, lambda i, a: jnp.sin(a), x),
                (np.float32(0.),), (np.float32(1.),)),
        jax.grad(lambda x: jax.lax.scan(lambda c, _: (c * x, c), 1., length=0)[0])(2.)))


ERRORS = {
    "carry_type": lambda jax, jnp: jax.lax.scan(
        lambda c, x: (jnp.stack([c, c]), x), 0., jnp.ones(3)),
    "carry_types": lambda jax, jnp: jax.lax.scan(
        lambda c, x: ((c[0] > 0, jnp.int32(1)), x), (jnp.float32(0.), 1.), jnp.ones(3)),
    "carry_structure": lambda jax, jnp: jax.lax.scan(lambda c, x: ((c, c), x), 0., jnp.ones(3)),
    "carry_structures": lambda jax, jnp: jax.lax.scan(
        lambda c, x: ((c, c), x), (0., 1.), jnp.ones(3)),
    "carry_dict_keys": lambda jax, jnp: jax.lax.scan(
        lambda c, x: ({"a": c["b"]}, x), {"b": 0.}, jnp.ones(3)),
    "fori_loop_carry": lambda jax, jnp: jax.lax.fori_loop(0, 3, lambda i, c: (c, c), 1.),
    "while_loop_structure": lambda jax, jnp: jax.lax.while_loop(
        lambda c: True, lambda c: (c, c), 1.),
    "length_disagrees": lambda jax, jnp: jax.lax.scan(
        lambda c, x: (c, x), 0., jnp.ones(3), length=4),
    "different_lengths": lambda jax, jnp: jax.lax.scan(
        lambda c, x: (c, x), 0., (jnp.ones(3), jnp.ones(2))),
    "no_length": lambda jax, jnp: jax.lax.scan(lambda c, x: (c, x), 0.),
    "no_leading_axis": lambda jax, jnp: jax.lax.scan(lambda c, x: (c, x), 0., [1., 2.]),
    "not_a_pair": lambda jax, jnp: jax.lax.scan(lambda c, x: (c, x, x), 0., jnp.ones(3)),
    "not_a_tuple": lambda jax, jnp: jax.lax.scan(lambda c, x: c, 0., jnp.ones(3)),
    "not_callable": lambda jax, jnp: jax.lax.scan(3, 0., jnp.ones(3)),
    "negative_unroll": lambda jax, jnp: jax.lax.scan(
        lambda c, x: (c, x), 0., jnp.ones(3), unroll=-1),
    "traced_length": lambda jax, jnp: jax.jit(
        lambda n: jax.lax.scan(lambda c, x: (c, x), 0., None, length=n))(3),
    "fori_unroll_traced_bounds": lambda jax, jnp: jax.jit(lambda n: jax.lax.fori_loop(
        0, n, lambda i, c: c + 0.5, 1., unroll=2))(3),
    "fori_bounds_types": lambda jax, jnp: jax.lax.fori_loop(0., 3, lambda i, c: c, 1.),
    "map_nothing": lambda jax, jnp: jax.lax.map(lambda x: x, (), batch_size=2),
}
# Messages compared word for word (the others by the exception's type): JAX's
# names its own ShapedArray class, which lives in another module.
COMPARED = {"carry_type", "carry_types", "carry_structure", "carry_structures",
            "carry_dict_keys", "fori_loop_carry", "while_loop_structure", "length_disagrees",
            "different_lengths", "no_length", "no_leading_axis", "not_a_pair", "not_a_tuple",
            "not_callable", "negative_unroll", "fori_unroll_traced_bounds", "fori_bounds_types",
            "map_nothing"}


@pytest.mark.parametrize("name", ERRORS)
def test_errors_are_jax_s(name):
    def run(jax, jnp):
        try:
            ERRORS[name](jax, jnp)
        except Exception as e:  # noqa: BLE001  (the type is compared with JAX's)
            message = str(e).replace("jax._src.core.", "").replace("minijax.core.", "")
            print(type(e).__name__, message if name in COMPARED else "")
    assert_same(run)


@pytest.mark.parametrize("wrap", ["eager", "jit"])
def test_reverse_mode_through_a_long_fori_loop(wrap):
    def run(jax, jnp):
        f = partial(jax.lax.fori_loop, 0, 1000, lambda i, v: v * 0.9 + jnp.sin(v) * 0.05)
        g = jax.grad(f)
        return (jax.jit(g) if wrap == "jit" else g)(1.)
    assert_same(run)


def _tangent_of_a_loop(jax, jnp, inner):
    """The tangent of a fori_loop (a scan) for a constant input tangent: inside the
    tangent scan, the carry starts known and the body makes it depend on x."""
    def f(x):
        return jax.lax.fori_loop(0, 3, lambda i, a: jnp.sin(a), x)
    if inner == "jvp":
        return lambda x: jax.jvp(f, (x,), (x * 0.5,))[1]
    return lambda x: jax.linearize(f, x)[1](jnp.ones_like(x) * -0.5)


@pytest.mark.parametrize("inner", ["jvp", "linearize"])
@pytest.mark.parametrize("outer", ["jvp of jit", "linearize of jit", "grad of jit"])
def test_differentiating_a_staged_loop_tangent(inner, outer):
    """Splitting the staged tangent scan passes its known initial carry to the
    unknown scan, which the body makes it part of."""
    def run(jax, jnp):
        g, x = jax.jit(_tangent_of_a_loop(jax, jnp, inner)), jnp.array(X)
        if outer == "jvp of jit":
            return jax.jvp(g, (x,), (x,))
        if outer == "linearize of jit":
            return jax.linearize(g, x)[1](x)
        return jax.grad(lambda x: jnp.sum(g(x)))(x)
    assert_same(run)
