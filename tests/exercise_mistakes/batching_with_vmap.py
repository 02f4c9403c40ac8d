"""Wrong answers to the exercise of "Batching with vmap"."""

import numpy as np

import minijax.ad as ad
import minijax.batching as batching
from minijax.core import Primitive
from minijax.lax.lax import rev


def _cumsum_batched_by(rule):
    """cumsum as a primitive of its own, batched by ``rule(cumsum, x, d, axis)``."""
    cumsum_p = Primitive("cumsum")
    cumsum_p.def_impl(lambda x, *, axis: np.cumsum(x, axis=axis))
    cumsum_p.def_abstract_eval(lambda x, *, axis: x)
    ad.deflinear(cumsum_p)
    ad.deflinear_transpose(cumsum_p, lambda ct, x, *, axis: rev(cumsum(rev(ct, (axis,)), axis),
                                                                (axis,)))

    def cumsum(x, axis=0):
        return cumsum_p.bind(x, axis=axis)

    batching.primitive_batchers[cumsum_p] = (
        lambda axis_size, vals, dims, *, axis: rule(cumsum, vals[0], dims[0], axis))
    return cumsum


# The example's axis used on the batch: with the batch axis in front, cumsum runs
# along the batch instead.
axis_unchanged = _cumsum_batched_by(lambda cumsum, x, d, axis: (cumsum(x, axis), d))
# Always one further: right while the batch axis comes first, wrong when it comes after.
axis_always_shifted = _cumsum_batched_by(lambda cumsum, x, d, axis: (cumsum(x, axis + 1), d))
# The right sums, but the output's batch axis reported at 0 wherever it is.
batch_axis_reported_at_0 = _cumsum_batched_by(
    lambda cumsum, x, d, axis: (cumsum(x, axis + 1 if d <= axis else axis), 0))
# The batch axis moved to the front, and the axis not shifted past it.
moved_but_not_shifted = _cumsum_batched_by(
    lambda cumsum, x, d, axis: (cumsum(batching.move_batch_axis(x.shape[d], d, 0, x), axis), 0))
# NumPy on the batch: fine on arrays, but jit or grad hand the rule tracers.
numpy_cumsum = _cumsum_batched_by(
    lambda cumsum, x, d, axis: (np.cumsum(np.asarray(x), axis=axis + 1 if d <= axis else axis), d))

MISTAKES = {
    "check_cumsum_batching": [axis_unchanged, axis_always_shifted, batch_axis_reported_at_0,
                              moved_but_not_shifted, numpy_cumsum],
}
