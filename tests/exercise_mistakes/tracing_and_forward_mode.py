"""Wrong answers to the exercise of "Tracing and forward mode"."""

import numpy as np

import minijax.numpy as jnp
from minijax.ad import defjvp
from minijax.core import Primitive, ShapedArray


def _log1pexp(impl, abstract_eval, rule):
    """log1pexp as a primitive of its own with these rules."""
    primitive = Primitive("log1pexp")
    primitive.def_impl(impl)
    primitive.def_abstract_eval(abstract_eval)
    defjvp(primitive, rule)
    return lambda x: primitive.bind(x)


def _stable(x):
    return np.logaddexp(0, x)


def _same(x):
    return x


def _sigmoid_rule(g, x):
    return g / (1 + jnp.exp(-x))


def _log1p_of_exp(x):
    """The body of log1pexp in NumPy: e^100 overflows, and the value is inf."""
    with np.errstate(over="ignore"):
        return np.log1p(np.exp(x))


overflowing_impl = _log1pexp(_log1p_of_exp, _same, _sigmoid_rule)
# A float32 result that forgets the weak type: log1pexp(3.0) comes out strong.
strong_abstract_eval = _log1pexp(_stable, lambda x: ShapedArray(x.shape, np.float32),
                                 _sigmoid_rule)
# The derivative as e^x / (1 + e^x): inf / inf = nan at 100, the bug of the composed rules.
overflowing_rule = _log1pexp(_stable, _same, lambda g, x: g * jnp.exp(x) / (1 + jnp.exp(x)))
# The slope alone, not times the tangent: right for a tangent of 1 only.
rule_without_tangent = _log1pexp(_stable, _same, lambda g, x: 1 / (1 + jnp.exp(-x)))
# The rule in NumPy: fine once, but a second jvp cannot see through np.exp.
numpy_rule = _log1pexp(_stable, _same, lambda g, x: g / (1 + np.exp(-np.asarray(x))))
# The sigmoid of -x, the derivative of log(1 + e^-x).
mirrored_rule = _log1pexp(_stable, _same, lambda g, x: g / (1 + jnp.exp(x)))


def composed(x):
    """No primitive at all: the composed rules, whose derivative at 100 is nan."""
    return jnp.log(1. + jnp.exp(x))


MISTAKES = {
    "check_log1pexp": [overflowing_impl, strong_abstract_eval, overflowing_rule,
                       rule_without_tangent, numpy_rule, mirrored_rule, composed],
}
