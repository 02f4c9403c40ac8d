"""Property test: random programs under random stacks of transformations, beside JAX."""
from hypothesis import given, settings, strategies as st

from parity import assert_same

# Operations that are smooth and finite on the inputs drawn below.
UNARY = ["sin", "cos", "tanh", "exp_small", "square", "log1p_abs", "neg"]
BINARY = ["add", "mul", "sub"]
TRANSFORMS = ["grad", "jit", "vmap", "jvp"]


def _unary(jnp, name, x):
    return {
        "sin": jnp.sin, "cos": jnp.cos, "tanh": jnp.tanh,
        "exp_small": lambda v: jnp.exp(jnp.tanh(v)),
        "square": lambda v: v * v,
        "log1p_abs": lambda v: jnp.log1p(jnp.abs(v) + 0.5),
        "neg": lambda v: -v,
    }[name](x)


def _program(jnp, ops):
    """A scalar function: a chain of operations, each binary one reusing the input."""
    def f(x):
        y = x
        for kind, name in ops:
            if kind == "unary":
                y = _unary(jnp, name, y)
            else:
                y = {"add": y + x, "mul": y * x, "sub": y - x}[name]
        return y
    return f


def _transform(jax, f, name):
    if name == "grad":
        return jax.grad(f)
    if name == "jit":
        return jax.jit(f)
    if name == "vmap":
        return lambda x: jax.numpy.sum(jax.vmap(f)(x * jax.numpy.ones(3)))
    return lambda x: jax.jvp(f, (x,), (1.0,))[1]


ops = st.lists(st.one_of(st.tuples(st.just("unary"), st.sampled_from(UNARY)),
                         st.tuples(st.just("binary"), st.sampled_from(BINARY))),
               min_size=1, max_size=5)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(ops=ops, transforms=st.lists(st.sampled_from(TRANSFORMS), min_size=1, max_size=3),
       x=st.floats(-1.5, 1.5, allow_nan=False, width=32))
def test_random_programs_match_jax(ops, transforms, x):
    def run(jax, jnp):
        f = _program(jnp, ops)
        for name in transforms:
            f = _transform(jax, f, name)
        return f(jnp.float32(x))
    assert_same(run)
