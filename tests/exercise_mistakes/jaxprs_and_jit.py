"""Wrong answers to the exercise of "Jaxprs and jit"."""

import numpy as np

from minijax.core import get_aval
from minijax.jaxpr import eval_jaxpr
from minijax.partial_eval import trace_to_jaxpr


def _jit_keyed_by(signature):
    """A jit whose cache is keyed by ``signature(args)``."""
    def jit(f):
        cache = {}

        def jitted(*args):
            key = signature(args)
            if key not in cache:
                cache[key] = trace_to_jaxpr(lambda *xs: [f(*xs)], [get_aval(x) for x in args])
            jaxpr, consts = cache[key]
            return eval_jaxpr(jaxpr, consts, *args)[0]
        return jitted
    return jit


# Shapes alone: 2.0 and jnp.float32(2.0) share a jaxpr, and the int 3 runs a float one.
jit_by_shape = _jit_keyed_by(lambda args: tuple(np.shape(x) for x in args))
# One jaxpr for every call: the first signature's.
jit_traced_once = _jit_keyed_by(lambda args: None)
# No key that repeats: a trace per call, as if there were no cache.
jit_without_cache = _jit_keyed_by(lambda args: object())


def jit_without_constants(f):
    """The jaxpr's constants dropped: a function closing over an array breaks."""
    def jitted(*args):
        jaxpr, _ = trace_to_jaxpr(lambda *xs: [f(*xs)], [get_aval(x) for x in args])
        return eval_jaxpr(jaxpr, [], *args)[0]
    return jitted


def jit_calling_f(f):
    """Traces once per signature, then runs the Python function anyway."""
    cache = {}

    def jitted(*args):
        avals = tuple(get_aval(x) for x in args)
        if avals not in cache:
            cache[avals] = trace_to_jaxpr(lambda *xs: [f(*xs)], list(avals))
        return f(*args)
    return jitted


MISTAKES = {
    "check_jit": [jit_by_shape, jit_traced_once, jit_without_cache, jit_without_constants,
                  jit_calling_f],
}
