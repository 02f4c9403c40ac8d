"""lax.while_loop, lax.cond and lax.fori_loop beside JAX, under each transformation."""
from functools import partial

import pytest

from parity import assert_same


def _doubling(jax):
    return lambda x: jax.lax.while_loop(lambda c: c < 10., lambda c: c * 2., x)


def _closure_loop(jax):
    # The body closes over x: the closed-over value becomes an input of the loop.
    return lambda x: jax.lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * x),
                                        (0, 1.))[1]


def _cond(jax, jnp):
    return lambda p, x: jax.lax.cond(p, lambda x: jnp.sin(x), lambda x: jnp.cos(x), x)


XS = [1., 3., 20.]

WHILE = {
    "eval": lambda jax, jnp: _doubling(jax)(1.),
    "jit": lambda jax, jnp: jax.jit(_doubling(jax))(1.),
    "jvp": lambda jax, jnp: jax.jvp(_doubling(jax), (1.,), (1.,)),
    "vmap_batched_predicate": lambda jax, jnp: jax.vmap(_doubling(jax))(jnp.array(XS)),
    "vmap_of_jvp": lambda jax, jnp: jax.vmap(lambda x: jax.jvp(_doubling(jax), (x,), (1.,)))(
        jnp.array(XS)),
    "jvp_of_vmap": lambda jax, jnp: jax.jvp(jax.vmap(_doubling(jax)), (jnp.array(XS),),
                                            (jnp.ones(3),)),
    "closure_jvp": lambda jax, jnp: jax.jvp(_closure_loop(jax), (1.5,), (1.,)),
    "closure_vmap": lambda jax, jnp: jax.vmap(_closure_loop(jax))(jnp.arange(3.)),
    "closure_jit_jvp": lambda jax, jnp: jax.jit(
        lambda x: jax.jvp(_closure_loop(jax), (x,), (1.,)))(1.5),
    "make_jaxpr": lambda jax, jnp: print(jax.make_jaxpr(_doubling(jax))(1.)),
}


@pytest.mark.parametrize("name", WHILE)
def test_while_loop(name):
    assert_same(WHILE[name])


@pytest.mark.parametrize("wrap", ["grad", "grad_of_jit"])
def test_reverse_mode_through_while_loop_raises_value_error(wrap):
    def run(jax, jnp):
        f = _doubling(jax)
        f = jax.grad(jax.jit(f)) if wrap == "grad_of_jit" else jax.grad(f)
        try:
            f(1.)
        except ValueError as e:
            print(type(e).__name__, " ".join(str(e).split()[:8]))
    assert_same(run)


COND = {
    "eval": lambda jax, jnp: (_cond(jax, jnp)(True, 1.), _cond(jax, jnp)(False, 1.)),
    "jit": lambda jax, jnp: jax.jit(_cond(jax, jnp))(True, 1.),
    "grad": lambda jax, jnp: jax.grad(_cond(jax, jnp), 1)(True, 1.),
    "grad_of_jit": lambda jax, jnp: jax.grad(jax.jit(_cond(jax, jnp)), 1)(False, 1.),
    "jvp": lambda jax, jnp: jax.jvp(lambda x: _cond(jax, jnp)(x > 0, x), (1.,), (2.,)),
    "vmap_batched_predicate": lambda jax, jnp: jax.vmap(
        lambda x: _cond(jax, jnp)(x > 1, x))(jnp.arange(3.)),
    "vmap": lambda jax, jnp: jax.vmap(lambda x: _cond(jax, jnp)(True, x))(jnp.arange(3.)),
    "grad_of_vmap": lambda jax, jnp: jax.grad(lambda x: jnp.sum(jax.vmap(
        lambda x: _cond(jax, jnp)(x > 1, x))(x)))(jnp.arange(3.)),
    "grad_grad": lambda jax, jnp: jax.grad(jax.grad(lambda x: _cond(jax, jnp)(x > 0, x * x)))(1.),
    "closure": lambda jax, jnp: jax.grad(lambda x: jax.lax.cond(
        x > 0, lambda: x * jnp.array(3.), lambda: x ** 2))(2.),
}


@pytest.mark.parametrize("name", COND)
def test_cond(name):
    assert_same(COND[name])


def _fori(jax):
    return lambda x: jax.lax.fori_loop(0, 3, lambda i, c: c * x + i, 1.)


FORI = {
    "eval": lambda jax, jnp: _fori(jax)(2.),
    "grad_static_bounds": lambda jax, jnp: jax.grad(_fori(jax))(2.),
    "jit_grad": lambda jax, jnp: jax.jit(jax.grad(_fori(jax)))(2.),
    "traced_bounds": lambda jax, jnp: jax.jit(
        lambda n, x: jax.lax.fori_loop(0, n, lambda i, c: c * x, 1.))(3, 2.),
    "concrete_array_bound_grad": lambda jax, jnp: jax.grad(
        lambda x, n: jax.lax.fori_loop(0, n, lambda i, c: c * x, 1.))(2., jnp.int32(3)),
}


@pytest.mark.parametrize("name", FORI)
def test_fori_loop(name):
    assert_same(FORI[name])


def test_type_errors_for_mismatched_branches_and_carries():
    def run(jax, jnp):
        for thunk in [lambda: jax.lax.while_loop(lambda c: c < 10., lambda c: (c * 2., c), 1.),
                      lambda: jax.lax.cond(True, lambda x: x, lambda x: (x, x), 1.)]:
            try:
                thunk()
            except TypeError as e:
                print(type(e).__name__)
    assert_same(run)


@pytest.mark.parametrize("wrap", ["eager", "jit"])
def test_a_python_number_carry_takes_the_type_the_body_gives_it(wrap):
    def run(jax, jnp):
        def count(n):
            return jax.lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 1.5),
                                      (0, 1))
        return (jax.jit(count) if wrap == "jit" else count)(3)
    assert_same(run)


def _implicit_fixed_point(jax, jnp):
    """The tutorial's fixed_point with a custom_vjp from the implicit function theorem."""
    @partial(jax.custom_vjp, nondiff_argnums=(0,))
    def fixed_point(f, a, x_guess):
        def cond_fun(carry):
            x_prev, x = carry
            return jnp.abs(x_prev - x) > 1e-6

        def body_fun(carry):
            _, x = carry
            return x, f(a, x)
        _, x_star = jax.lax.while_loop(cond_fun, body_fun, (x_guess, f(a, x_guess)))
        return x_star

    def fixed_point_fwd(f, a, x_init):
        x_star = fixed_point(f, a, x_init)
        return x_star, (a, x_star)

    def rev_iter(f, packed, u):
        a, x_star, x_star_bar = packed
        _, vjp_x = jax.vjp(lambda x: f(a, x), x_star)
        return x_star_bar + vjp_x(u)[0]

    def fixed_point_rev(f, res, x_star_bar):
        a, x_star = res
        _, vjp_a = jax.vjp(lambda a: f(a, x_star), a)
        a_bar, = vjp_a(fixed_point(partial(rev_iter, f), (a, x_star, x_star_bar), x_star_bar))
        return a_bar, jnp.zeros_like(x_star)

    fixed_point.defvjp(fixed_point_fwd, fixed_point_rev)
    return lambda a: fixed_point(lambda a, x: 0.5 * (x + a / x), a, a)


def test_implicit_differentiation_of_a_fixed_point():
    def run(jax, jnp):
        newton_sqrt = _implicit_fixed_point(jax, jnp)
        return (newton_sqrt(2.), jax.grad(newton_sqrt)(2.), jax.grad(jax.grad(newton_sqrt))(2.),
                jax.jit(jax.grad(newton_sqrt))(2.),
                jax.vmap(jax.grad(newton_sqrt))(jnp.array([2., 3.])),
                jax.jit(jax.vmap(newton_sqrt))(jnp.array([3., 4., 5., 6.])))
    assert_same(run)


def _log_where_positive(jax, jnp):
    return lambda x: jax.lax.cond(x > 0., jnp.log, lambda a: a * 0., x)


@pytest.mark.parametrize("transform", [
    lambda jax, jnp, f, xs: jax.grad(lambda xs: jnp.sum(jax.vmap(f)(xs)))(xs),
    lambda jax, jnp, f, xs: jax.vjp(jax.vmap(f), xs)[1](jnp.ones(3)),
    lambda jax, jnp, f, xs: jax.jit(jax.grad(lambda xs: jnp.sum(jax.vmap(f)(xs))))(xs),
    lambda jax, jnp, f, xs: jax.jvp(jax.vmap(f), (xs,), (jnp.ones(3),)),
    lambda jax, jnp, f, xs: jax.vmap(jax.grad(f))(xs),
], ids=["grad_of_vmap", "vjp_of_vmap", "jit_grad_of_vmap", "jvp_of_vmap", "vmap_of_grad"])
def test_a_branch_not_taken_gives_no_nan_gradient_under_vmap(transform):
    """With a predicate per example, both branches run on every example; as in JAX,
    the branch an example does not take gets its inputs with gradients stopped, so
    log's derivative at 0 (inf, times a zero cotangent) does not make a nan."""
    assert_same(lambda jax, jnp: transform(jax, jnp, _log_where_positive(jax, jnp),
                                           jnp.array([0., 1., 2.])))


def test_a_batched_predicate_keeps_jaxs_weak_types_and_jaxpr():
    def run(jax, jnp):
        xs = jnp.array([0., 1.])

        def g(y):
            return jnp.sum(jax.vmap(lambda x: jax.lax.cond(
                x > 0., lambda a: a ** 3, lambda a: a * 2., y))(xs))
        staged = jax.make_jaxpr(jax.vmap(lambda x, y: jax.lax.cond(
            x > 0., jnp.sin, lambda a: a * 2., y)))(xs, xs)
        # minijax writes out broadcasts and selects with a boolean: compare the rest.
        names = [e.primitive.name for e in staged.eqns]
        return jax.grad(g)(1.5), jax.grad(g)(jnp.float32(1.5)), [
            n for n in names if n in ("stop_gradient", "select_n", "mul", "sin")]
    assert_same(run)


def test_stop_gradient():
    assert_same(lambda jax, jnp: (
        jax.grad(lambda x: x * jax.lax.stop_gradient(x))(3.),
        jax.jvp(jax.lax.stop_gradient, (jnp.float32(3.),), (jnp.float32(1.),)),
        jax.vmap(jax.lax.stop_gradient)(jnp.arange(3.)),
        jax.lax.stop_gradient({"a": jnp.ones(2), "b": (jnp.float32(2.),)}),
        str(jax.make_jaxpr(jax.grad(lambda x: x * jax.lax.stop_gradient(x)))(3.))))
