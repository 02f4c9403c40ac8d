"""Wrong answers to the exercises of "Gradient clipping"."""

import minijax.numpy as jnp
from minijax import custom_vjp
from minijax.tree_util import tree_leaves, tree_map


def _clipper(bwd):
    """An identity on params, with ``bwd`` as its backward function."""
    @custom_vjp
    def clip_global_norm(max_norm, params):
        return params

    clip_global_norm.defvjp(lambda max_norm, params: (params, max_norm), bwd)
    return clip_global_norm


def _norm(leaf):
    return jnp.sqrt(jnp.sum(leaf ** 2))


# Each array is clipped by its own norm, which turns the gradient's direction.
clip_each_leaf = _clipper(lambda max_norm, g: (
    None, tree_map(lambda leaf: max_norm / jnp.maximum(_norm(leaf), max_norm) * leaf, g)))

# Each entry is clipped to [-max_norm, max_norm], as clip_gradient does.
clip_each_entry = _clipper(lambda max_norm, g: (
    None, tree_map(lambda leaf: jnp.clip(leaf, -max_norm, max_norm), g)))


def _bwd_python_if(max_norm, g):
    """A Python if on the norm: fine for grad, an error under jit, where it is a tracer."""
    norm = jnp.sqrt(sum(jnp.sum(leaf ** 2) for leaf in tree_leaves(g)))
    if norm > max_norm:
        return None, tree_map(lambda leaf: max_norm / norm * leaf, g)
    return None, g


clip_python_if = _clipper(_bwd_python_if)


def _bwd_squared_norm(max_norm, g):
    """The sum of squares without the square root: scales by c / n^2."""
    squared = sum(jnp.sum(leaf ** 2) for leaf in tree_leaves(g))
    return None, tree_map(lambda leaf: max_norm / jnp.maximum(squared, max_norm) * leaf, g)


clip_squared_norm = _clipper(_bwd_squared_norm)

MISTAKES = {
    "check_clip_global_norm": [clip_each_leaf, clip_each_entry, clip_python_if,
                               clip_squared_norm],
}
