"""custom_batching.custom_vmap and sequential_vmap beside JAX: which of the function
and the rule runs under each transformation, with what, and the errors."""
import numpy as np
import pytest

from parity import assert_same

X = np.arange(6., dtype=np.float32).reshape(2, 3)


def _add_with_product_rule(jax, jnp):
    """A function whose rule computes something else (so the one that ran shows in
    the result) and says what it was called with."""
    @jax.custom_batching.custom_vmap
    def f(x, y):
        print("f runs")
        return jnp.sin(x) * y

    @f.def_vmap
    def f_vmap_rule(axis_size, in_batched, xs, ys):
        print("rule:", axis_size, in_batched, jnp.asarray(xs).shape, jnp.asarray(ys).shape)
        return jnp.sin(xs) * ys * ys, any(in_batched)

    return f


def _printed(run):
    """``run``'s result, or its exception's type and message, printed."""
    def printed(jax, jnp):
        try:
            return run(jax, jnp)
        except Exception as error:  # noqa: BLE001  (its type and text are compared)
            print(type(error).__name__, error)
    return printed


V = np.array([0., 1., 2.], np.float32)
ONES = np.ones(3, np.float32)
# Strongly typed scalars: the tangent of a Python float is weakly typed in JAX only.
ONE, TWO, ZERO = np.float32(1.), np.float32(2.), np.float32(0.)

CALLS = {
    # Without vmap, or with no argument batched, the function runs and the rule does not.
    "eval": lambda jax, f: f(1., 2.),
    "jit": lambda jax, f: jax.jit(f)(1., 2.),
    "jvp": lambda jax, f: jax.jvp(f, (1., 2.), (1., 0.)),
    "vmap_nothing_batched": lambda jax, f: jax.vmap(f, in_axes=None, axis_size=3)(1., 2.),
    # Under vmap the rule runs, on the batch axis first, whatever in_axes say.
    "vmap": lambda jax, f: jax.vmap(f)(V, V),
    "vmap_one_batched": lambda jax, f: jax.vmap(f, in_axes=(0, None))(V, 2.),
    "vmap_other_one_batched": lambda jax, f: jax.vmap(f, in_axes=(None, 0))(2., V),
    "vmap_axis_1": lambda jax, f: jax.vmap(f, in_axes=(1, None))(X, ONES[:2]),
    "vmap_out_axes_1": lambda jax, f: jax.vmap(f, in_axes=(0, None), out_axes=1)(X, 1.),
    "jit_of_vmap": lambda jax, f: jax.jit(jax.vmap(f))(V, V),
    "vmap_of_jit": lambda jax, f: jax.vmap(jax.jit(f))(V, V),
    # Nested vmap: the inner rule's operations are batched by the outer vmap, and an
    # inner rule that sees only a value batched by the outer vmap is not run by it.
    "vmap_of_vmap": lambda jax, f: jax.vmap(jax.vmap(f))(X, X),
    "vmap_of_vmap_crossed": lambda jax, f: jax.vmap(jax.vmap(f, in_axes=(0, None)),
                                                    in_axes=(None, 0))(V, V[:2]),
    "vmap_of_vmap_inner_unbatched": lambda jax, f: jax.vmap(
        jax.vmap(f, in_axes=(None, None), axis_size=2))(V, V),
    "vmap_of_vmap_axis_1": lambda jax, f: jax.vmap(jax.vmap(f), in_axes=(1, 1))(X, X),
    # jvp outside vmap differentiates the rule.
    "jvp_of_vmap": lambda jax, f: jax.jvp(jax.vmap(f), (V, V), (ONES, ONES)),
    "jvp_of_jit_of_vmap": lambda jax, f: jax.jvp(jax.jit(jax.vmap(f)), (V, V), (ONES, V)),
    # vmap outside jvp runs the JVP of the rule, for primals and tangents batched
    # together; what only one side batches is batched around the rule's JVP.
    "vmap_of_jvp": lambda jax, f: jax.vmap(lambda x, y, t, u: jax.jvp(f, (x, y), (t, u)))(
        V, V, ONES, V),
    "vmap_of_jvp_primals_batched": lambda jax, f: jax.vmap(
        lambda x: jax.jvp(f, (x, TWO), (ONE, ZERO)))(V),
    "vmap_of_jvp_tangents_batched": lambda jax, f: jax.vmap(
        lambda t: jax.jvp(f, (ONE, TWO), (t, ZERO)))(V),
    "vmap_of_jvp_mixed": lambda jax, f: jax.vmap(
        lambda x, t: jax.jvp(f, (x, TWO), (ONE, t)))(V, V),
    "vmap_of_jit_of_jvp": lambda jax, f: jax.vmap(jax.jit(
        lambda x, t: jax.jvp(f, (x, x), (t, t))))(V, ONES),
    "jvp_of_jvp_under_vmap": lambda jax, f: jax.vmap(lambda x: jax.jvp(
        lambda y: jax.jvp(f, (y, TWO), (ONE, ZERO))[1], (x,), (ONE,)))(V),
    "vmap_of_vmap_of_jvp": lambda jax, f: jax.vmap(jax.vmap(
        lambda x, t: jax.jvp(f, (x, x), (t, t))))(X, X),
    # Reverse mode is not supported; gradients that do not reach f are.
    "grad": lambda jax, f: jax.grad(f)(1., 2.),
    "grad_of_jit": lambda jax, f: jax.grad(jax.jit(f))(1., 2.),
    "jit_of_grad": lambda jax, f: jax.jit(jax.grad(f))(1., 2.),
    "grad_of_vmap": lambda jax, f: jax.grad(lambda x: jax.numpy.sum(jax.vmap(f)(x, x)))(V),
    "vjp": lambda jax, f: jax.vjp(f, 1., 2.)[0],
    "vjp_of_jit": lambda jax, f: jax.vjp(jax.jit(f), 1., 2.)[0],
    "grad_of_cond": lambda jax, f: jax.grad(lambda x: jax.lax.cond(
        x > 0, lambda x: f(x, 2.), lambda x: x, x))(1.),
    "linearize": lambda jax, f: jax.linearize(f, 1., 2.)[0],
    "grad_elsewhere": lambda jax, f: jax.grad(lambda x, y: jax.numpy.sin(x) * f(y, 2.))(1., 3.),
}


@pytest.mark.parametrize("name", CALLS)
def test_which_runs_and_what_it_gives(name):
    assert_same(_printed(lambda jax, jnp: CALLS[name](jax, _add_with_product_rule(jax, jnp))))


def test_jaxprs():
    def run(jax, jnp):
        f = _add_with_product_rule(jax, jnp)
        print(jax.make_jaxpr(f)(1., 2.))
        print(jax.make_jaxpr(jax.vmap(f))(V, V))
        print(jax.make_jaxpr(lambda x: jax.jvp(f, (x, x), (x, x)))(1.))
    assert_same(run)


def test_the_documented_examples():
    def run(jax, jnp):
        @jax.custom_batching.custom_vmap
        def f(x, y):
            return x + y

        @f.def_vmap
        def f_vmap_rule(axis_size, in_batched, xs, ys):
            assert all(in_batched)
            assert xs.shape[0] == axis_size and ys.shape[0] == axis_size
            return xs * ys, True

        # With custom_vjp around it: its rule for vmap, custom_vjp's for grad.
        @jax.custom_vjp
        @jax.custom_batching.custom_vmap
        def g(x, y):
            return jnp.sin(x) * y

        @g.def_vmap
        def g_vmap_rule(axis_size, in_batched, xs, ys):
            return jnp.cos(xs) * ys, True

        g.defvjp(lambda x, y: (g(x, y), (jnp.cos(x), jnp.sin(x), y)),
                 lambda res, ct: (res[0] * ct * res[2], res[1] * ct))
        return (jax.vmap(f)(jnp.arange(3), jnp.arange(1, 4)),
                jax.vmap(g)(jnp.zeros(3), jnp.ones(3)), jax.grad(g)(jnp.zeros(()), jnp.ones(())),
                jax.vmap(jax.grad(g))(jnp.zeros(3), jnp.ones(3)))
    assert_same(run)


def test_custom_jvp_around_custom_vmap():
    def run(jax, jnp):
        @jax.custom_jvp
        @jax.custom_batching.custom_vmap
        def f(x):
            return jnp.sin(x)

        f.def_vmap(lambda axis_size, in_batched, xs: (jnp.sin(xs) * 10., True))
        f.defjvp(lambda primals, tangents: (f(*primals), jnp.cos(primals[0]) * tangents[0]))
        return jax.grad(f)(1.), jax.vmap(jax.grad(f))(V), jax.vmap(f)(V)
    assert_same(run)


def test_custom_vmap_around_custom_jvp_has_no_reverse_mode():
    def run(jax, jnp):
        g = jax.custom_jvp(jnp.sin)
        g.defjvp(lambda primals, tangents: (g(*primals), jnp.cos(*primals) * tangents[0]))
        f = jax.custom_batching.custom_vmap(g)
        f.def_vmap(lambda axis_size, in_batched, xs: (jnp.sin(xs), True))
        print(jax.jvp(f, (1.,), (1.,)))
        jax.grad(f)(1.)
    assert_same(_printed(run))


def _pytree_rule(jax, jnp):
    @jax.custom_batching.custom_vmap
    def f(p, x):
        return {"a": p["w"] * x, "b": (x, p["b"])}

    @f.def_vmap
    def rule(axis_size, in_batched, p, x):
        print("in_batched:", in_batched)
        out = {"a": p["w"] * x + 100., "b": (x, p["b"])}
        return out, {"a": True, "b": (in_batched[1], in_batched[0]["b"])}

    return f


PYTREES = {
    "all_batched": lambda jax, f: jax.vmap(f)({"w": V, "b": ONES}, V),
    "dict_in_axes": lambda jax, f: jax.vmap(f, in_axes=({"w": 0, "b": None}, 0))(
        {"w": V, "b": 2.}, V),
    "params_unbatched": lambda jax, f: jax.vmap(f, in_axes=(None, 0))({"w": ONE, "b": TWO}, V),
    "x_unbatched": lambda jax, f: jax.vmap(f, in_axes=({"w": 0, "b": None}, None))(
        {"w": V, "b": TWO}, TWO),
    "jvp_under_vmap": lambda jax, f: jax.vmap(lambda w, x: jax.jvp(
        f, ({"w": w, "b": 2.}, x), ({"w": 1., "b": 0.}, x)))(V, V),
}


@pytest.mark.parametrize("name", PYTREES)
def test_pytree_arguments_and_outputs(name):
    assert_same(lambda jax, jnp: PYTREES[name](jax, _pytree_rule(jax, jnp)))


def _unbatched_output(jax, jnp):
    """A rule whose output is the same for every example says so: it is broadcast
    only where a batched value is needed."""
    @jax.custom_batching.custom_vmap
    def f(x):
        return jnp.ones_like(x) * 7.

    f.def_vmap(lambda axis_size, in_batched, xs: (jnp.float32(7.), False))
    return f


UNBATCHED_OUTPUT = {
    "vmap": lambda jax, f: jax.vmap(f)(V),
    "out_axes_none": lambda jax, f: jax.vmap(f, out_axes=None)(V),
    "used_with_batched": lambda jax, f: jax.vmap(lambda x: f(x) + x)(V),
    "vmap_of_vmap": lambda jax, f: jax.vmap(jax.vmap(f))(X),
    "vmap_of_jvp": lambda jax, f: jax.vmap(lambda x: jax.jvp(f, (x,), (1.,)))(V),
    "jvp_of_vmap": lambda jax, f: jax.jvp(jax.vmap(f), (V,), (ONES,)),
    "jit": lambda jax, f: jax.jit(jax.vmap(f))(V),
}


@pytest.mark.parametrize("name", UNBATCHED_OUTPUT)
def test_an_unbatched_output_is_broadcast_when_needed(name):
    assert_same(lambda jax, jnp: UNBATCHED_OUTPUT[name](jax, _unbatched_output(jax, jnp)))


def test_no_arguments():
    def run(jax, jnp):
        f = jax.custom_batching.custom_vmap(lambda: jnp.float32(2.))
        f.def_vmap(lambda axis_size, in_batched: (jnp.float32(3.), False))
        return f(), jax.vmap(lambda x: f() + x)(jnp.ones(3))  # nothing batched: f runs
    assert_same(run)


def test_keyword_arguments_and_defaults():
    def run(jax, jnp):
        @jax.custom_batching.custom_vmap
        def f(x, y=2.):
            return x * y

        f.def_vmap(lambda axis_size, in_batched, x, y: (jnp.asarray(x) * y * 10., in_batched[0]))
        return (f(x=1.), jax.vmap(lambda x: f(x, y=3.))(V), jax.vmap(f)(V),
                jax.vmap(lambda y: f(2., y=y))(V))
    assert_same(run)


def test_closed_over_values():
    def run(jax, jnp):
        c = jnp.arange(3.)

        @jax.custom_batching.custom_vmap
        def f(x):
            return x * c

        f.def_vmap(lambda axis_size, in_batched, xs: (xs * c * 2., True))

        def g(x, c):  # closes over an argument: a tracer under jit, jvp or vmap
            h = jax.custom_batching.custom_vmap(lambda x: x * c)
            h.def_vmap(lambda axis_size, in_batched, xs: (xs * c * 2., True))
            return h(x)

        print(jax.make_jaxpr(f)(jnp.ones(3)))
        print(jax.make_jaxpr(g)(1., 3.))
        return (jax.vmap(f)(X), jax.jit(g)(1., 3.), jax.vmap(g, in_axes=(0, None))(V, 3.),
                jax.jvp(lambda c: g(2., c), (3.,), (1.,)))
    assert_same(run)


SEQUENTIAL = {
    "eval": lambda jax, f: f(ONES[:2], 3.),
    "vmap": lambda jax, f: jax.vmap(f)(X.reshape(3, 2), V),
    "in_axes": lambda jax, f: jax.vmap(f, in_axes=(1, None))(X, 2.),
    "jit": lambda jax, f: jax.jit(jax.vmap(f))(X.reshape(3, 2), V),
    "vmap_of_vmap": lambda jax, f: jax.vmap(jax.vmap(f))(
        np.arange(12., dtype=np.float32).reshape(2, 3, 2), X),
    "jvp_of_vmap": lambda jax, f: jax.jvp(jax.vmap(f), (X.reshape(3, 2), V),
                                          (np.ones((3, 2), np.float32), ONES)),
    "vmap_of_jvp": lambda jax, f: jax.vmap(lambda x, y: jax.jvp(f, (x, y), (x, y)))(
        X.reshape(3, 2), V),
    # Under vmap of jvp, arguments batched on one side only reach the loop unbatched.
    "vmap_of_jvp_primal_batched": lambda jax, f: jax.vmap(
        lambda x, y: jax.jvp(f, (x, y), (ONES[:2], 1.)))(X.reshape(3, 2), V),
    "grad": lambda jax, f: jax.grad(lambda x: f(x, 2.)[0])(ONES[:2]),
}


@pytest.mark.parametrize("name", SEQUENTIAL)
def test_sequential_vmap(name):
    def run(jax, jnp):
        @jax.custom_batching.sequential_vmap
        def f(x, y):
            return jnp.sum(x) * y, x
        return SEQUENTIAL[name](jax, f)
    assert_same(_printed(run))


def _misbehaving(rule, call=lambda jax, f: jax.vmap(f)(V)):
    """``call`` of a function whose rule returns ``rule(xs)``."""
    def run(jax, jnp):
        @jax.custom_batching.custom_vmap
        def f(x):
            return x, x
        f.def_vmap(lambda axis_size, in_batched, xs: rule(xs))
        return call(jax, f)
    return run


def _named_rule(jax, jnp):
    @jax.custom_batching.custom_vmap
    def f(x):
        return x, x

    @f.def_vmap
    def my_rule(axis_size, in_batched, xs):
        return xs, True
    return jax.vmap(f)(V)


def _no_rule(call):
    def run(jax, jnp):
        @jax.custom_batching.custom_vmap
        def f(x):
            return x
        return call(jax, f)
    return run


def _closes_over_a_batched_value(jax, jnp):
    def g(x):
        f = jax.custom_batching.custom_vmap(lambda y: x * y)
        f.def_vmap(lambda axis_size, in_batched, ys: (x * ys, True))
        return f(2.)
    return jax.vmap(g)(V)


ERRORS = {
    "no_rule": _no_rule(lambda jax, f: f(1.)),
    "no_rule_under_jit": _no_rule(lambda jax, f: jax.jit(f)(1.)),
    "batching_spec_structure": _misbehaving(lambda xs: ((xs, xs), True)),
    "output_structure": _misbehaving(lambda xs: ([xs, xs], [True, True])),
    "named_rule_output_structure": _named_rule,
    "not_a_pair": _misbehaving(lambda xs: (xs, xs, xs)),
    "output_structure_under_jvp": _misbehaving(
        lambda xs: ((xs, xs, xs), (True, True, True)),
        lambda jax, f: jax.vmap(lambda x: jax.jvp(f, (x,), (1.,)))(V)),
    "keyword_only": lambda jax, jnp: _keyword_only(jax)(1., y=2.),
    "closed_over_batched_value": _closes_over_a_batched_value,
}


def _keyword_only(jax):
    f = jax.custom_batching.custom_vmap(lambda x, *, y: x * y)
    f.def_vmap(lambda axis_size, in_batched, x: (x, True))
    return f


@pytest.mark.parametrize("name", ERRORS)
def test_errors(name):
    assert_same(_printed(ERRORS[name]))
