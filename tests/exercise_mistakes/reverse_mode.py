"""Wrong answers to the exercise of "Reverse mode"."""

import numpy as np

import minijax.ad as ad
from minijax.core import Primitive
from minijax.lax.lax import rev


def _cumsum_with(transpose):
    """cumsum as a linear primitive of its own, with this transpose rule."""
    cumsum_p = Primitive("cumsum")
    cumsum_p.def_impl(lambda x, *, axis: np.cumsum(x, axis=axis))
    cumsum_p.def_abstract_eval(lambda x, *, axis: x)
    ad.deflinear(cumsum_p)

    def cumsum(x, axis=0):
        return cumsum_p.bind(x, axis=axis)

    ad.deflinear_transpose(cumsum_p, lambda ct, x, *, axis: transpose(cumsum, ct, axis))
    return cumsum


# The rule of the exercise's text: cumsum again. Right for jvp, wrong for vjp and grad,
# since the transpose of a lower triangular matrix is upper triangular.
cumsum_again = _cumsum_with(lambda cumsum, ct, axis: cumsum(ct, axis))
# The identity: as if cumsum were its own transpose and the identity besides.
cotangent_unchanged = _cumsum_with(lambda cumsum, ct, axis: ct)
# Reverses the result only: the sums run the right way but land in the wrong places.
reversed_once = _cumsum_with(lambda cumsum, ct, axis: rev(cumsum(ct, axis), (axis,)))
# Reverses along axis 0 whatever the cumsum's axis: right for axis 0 only.
reversed_along_0 = _cumsum_with(
    lambda cumsum, ct, axis: rev(cumsum(rev(ct, (0,)), axis), (0,)))
# In NumPy: fine on arrays, but grad under jit hands the rule tracers.
numpy_transpose = _cumsum_with(lambda cumsum, ct, axis: np.flip(
    np.cumsum(np.flip(np.asarray(ct), axis), axis=axis), axis))

MISTAKES = {
    "check_cumsum": [cumsum_again, cotangent_unchanged, reversed_once, reversed_along_0,
                     numpy_transpose],
}
