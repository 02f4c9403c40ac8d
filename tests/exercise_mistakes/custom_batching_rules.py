"""Wrong answers to the exercise of "Custom batching rules"."""

import minijax.numpy as jnp
from minijax.custom_batching import custom_vmap


def _weighted_with_rule(rule):
    """``weighted`` with the batching rule ``rule(in_batched, xs, ws)``."""
    @custom_vmap
    def weighted(x, w):
        return w * x, jnp.sum(w ** 2)

    weighted.def_vmap(lambda axis_size, in_batched, xs, ws: rule(in_batched, xs, ws))
    return weighted


def _right_values(xs, ws):
    return ws * xs, jnp.sum(ws ** 2, axis=-1)


def weighted_without_rule(x, w):
    """Right values, but no custom_vmap: vmap batches the body."""
    return w * x, jnp.sum(w ** 2)


# The norm said to be batched even when the weights are shared: out_axes=None fails.
always_batched = _weighted_with_rule(lambda b, xs, ws: (_right_values(xs, ws), (True, True)))
# The norm said to be shared even when the weights are batched: vmap stacks it again.
norm_never_batched = _weighted_with_rule(
    lambda b, xs, ws: (_right_values(xs, ws), (b[0] or b[1], False)))
# The products batched only when x is: with batched weights alone they are stacked again.
products_batched_like_x = _weighted_with_rule(
    lambda b, xs, ws: (_right_values(xs, ws), (b[0], b[1])))
# The per-example code on the batch: the norm sums over the batch axis too.
norm_over_the_batch = _weighted_with_rule(
    lambda b, xs, ws: ((ws * xs, jnp.sum(ws ** 2)), (b[0] or b[1], b[1])))

MISTAKES = {
    "check_weighted": [weighted_without_rule, always_batched, norm_never_batched,
                       products_batched_like_x, norm_over_the_batch],
}
