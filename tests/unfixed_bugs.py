"""Bugs of minijax that the fuzzer found and that are not fixed yet.

These are not differences minijax makes on purpose (those are in differences.py):
each is a place where minijax gives a wrong answer or a wrong error, to be fixed.
Until it is, the seeded fuzz test skips the programs an entry recognises and prints
how many it skipped. tests/test_fuzz.py runs each entry's example: once a bug is
fixed, that test fails, so the entry is removed and the list cannot go stale.
"""

from __future__ import annotations

import re

import numpy as np

from differences import Entry

X3 = np.array([0.5, -1.0, 2.0], np.float32)


def _error(outcome) -> str:
    return type(outcome.error).__name__ if outcome.error is not None else ""


def _minijax_raises(m, kind: str, text: str) -> bool:
    return _error(m.mini) == kind and text in str(m.mini.error)


def negative_slice_step(m) -> bool:
    return _minijax_raises(m, "IndexError", "only positive slice steps")


def cond_message(m) -> bool:
    return "message:" in m.text() and "cond branches must have equal output types" in m.text()


def while_message(m) -> bool:
    return "message:" in m.text() and "while_loop body function carry input" in m.text()


def integer_negative_power(m) -> bool:
    return (_error(m.real) == "TypeError" and m.mini.error is None
            and "Integers cannot be raised to negative powers" in str(m.real.error))


def numpy_or_array(m) -> bool:
    kinds = "(numpy array|array|float|int|bool)"
    return any(re.search(f"minijax gives a {kinds}, JAX a {kinds}$", p.splitlines()[0])
               for p in m.problems)


def custom_vjp_exception(m) -> bool:
    return _error(m.real) == "CustomVJPException" and _error(m.mini) != "CustomVJPException"


def jit_inf_literal(m) -> bool:
    return _minijax_raises(m, "NameError", "name 'inf' is not defined") or \
        _minijax_raises(m, "NameError", "name 'nan' is not defined")


def jit_literal_parameter(m) -> bool:
    return _error(m.mini) == "SyntaxError" and "<minijax.jit" in str(m.mini.error)


def isfinite_weak_type(m) -> bool:
    return (("isfinite" in m.source or "isnan" in m.source) and m.mini.error is None
            and any("weak_type is True in minijax, False in JAX" in p for p in m.problems))


UNFIXED_BUGS = [
    Entry(
        "negative_slice_step",
        "negative slice steps raise",
        "x[::-1] (any negative slice step) raises IndexError \"minijax supports only "
        "positive slice steps\"; JAX reverses (lax.rev).",
        negative_slice_step,
        "def program(x, y):\n    return jnp.sin(x)[::-1]",
        X3, 0.0),
    Entry(
        "cond_type_message",
        "lax.cond's branch type error has an old message",
        "lax.cond with branches of different types raises TypeError with JAX's old text "
        "(\"true_fun and false_fun output must have identical types, got PyTreeDef...\"); "
        "JAX 0.10.2 names both branches and the component and ends with \"Revise true_fun "
        "and/or false_fun so that all output types match.\"",
        cond_message,
        "def program(x, y):\n"
        "    return lax.cond(True, lambda a: a * 2., lambda a: a > 0., x)",
        X3, 0.0),
    Entry(
        "while_carry_message",
        "lax.while_loop's carry type error has an old message",
        "lax.while_loop whose body changes the carry's shape raises TypeError with JAX's "
        "old text; JAX 0.10.2 names the carry component (c[1]), says \"so the shapes do "
        "not match\" and ends with \"Revise the function so that all output types match "
        "the corresponding input types.\"",
        while_message,
        "def program(x, y):\n"
        "    return lax.while_loop(lambda c: c[0] < 1, lambda c: (c[0] + 1, jnp.stack([c[1], "
        "c[1]])), (0, x))[1]",
        X3, 0.0),
    Entry(
        "integer_negative_power",
        "integers raised to negative powers",
        "An int32 array raised to a negative Python int (jnp.arange(3) ** -1) returns "
        "garbage (-2147483648, 1, 0); JAX raises TypeError \"Integers cannot be raised to "
        "negative powers\".",
        integer_negative_power,
        "def program(x, y):\n    return jnp.arange(3) ** -1",
        X3, 0.0),
    Entry(
        "numpy_or_array_result",
        "NumPy array, Python scalar or Array: results of inputs that are not Arrays",
        "On NumPy inputs the result's type differs: lax.fori_loop with Python bounds "
        "returns a NumPy array (JAX: an Array), and lax.fori_loop(0, 0, f, 0.0) the "
        "Python float (JAX: a weak Array); jnp.reshape of a NumPy array and "
        "lax.while_loop that runs no iteration return an Array (JAX: a NumPy array).",
        numpy_or_array,
        "def program(x, y):\n    return lax.fori_loop(0, 2, lambda i, a: a * 2., x)",
        X3, 0.0),
    Entry(
        "custom_vjp_exception",
        "CustomVJPException is missing",
        "Differentiating a custom_vjp function with respect to a value it closes over, "
        "under jit, raises UnexpectedTracerError; JAX raises CustomVJPException "
        "(\"Detected differentiation of a custom_vjp function with respect to a "
        "closed-over value\"), which minijax.errors does not have.",
        custom_vjp_exception,
        "def program(x, y):\n"
        "    def f(x, y):\n"
        "        c = jnp.mean(y)\n"
        "        @jax.custom_vjp\n"
        "        def h(a):\n"
        "            return jnp.sin(a) * c\n"
        "        h.defvjp(lambda a: (h(a), a), lambda a, g: (jnp.cos(a) * c * g,))\n"
        "        return jnp.sum(h(x))\n"
        "    return jax.grad(jax.jit(f), argnums=1)(x, y)",
        X3, X3),
    Entry(
        "jit_inf_literal",
        "jit of a program with an inf literal raises NameError",
        "jit(jnp.isfinite)(x) raises NameError: name 'inf' is not defined: the generated "
        "source writes a literal as repr(value), np.float32(inf) in NumPy 2, and the "
        "namespace has no inf (nor nan).",
        jit_inf_literal,
        "def program(x, y):\n    return jax.jit(jnp.isfinite)(x)",
        X3, 0.0),
    Entry(
        "jit_literal_parameter",
        "linearize of jit of lax.cond: SyntaxError in the generated code",
        "linearize(jit(lambda a: lax.cond(True, jnp.sin, jnp.sin, a)), 0.5) raises "
        "SyntaxError in <minijax.jit jvp(<lambda>)>: the JVP jaxpr of the jit equation "
        "has a Literal (the cond index, np.int32(1)) among its invars, which "
        "generate_source writes as a parameter name.",
        jit_literal_parameter,
        "def program(x, y):\n"
        "    f = jax.jit(lambda a: lax.cond(True, jnp.sin, jnp.sin, a))\n"
        "    out, f_jvp = jax.linearize(f, x)\n"
        "    return out, f_jvp(jnp.ones_like(x))",
        X3, 0.0),
    Entry(
        "isnan_isfinite_weak_type",
        "jnp.isfinite and jnp.isnan of a Python int are weakly typed",
        "jnp.isfinite(3) is Array(True, dtype=bool, weak_type=True) in minijax, and "
        "jnp.isnan(3) Array(False, ..., weak_type=True); JAX's results are not weak "
        "(minijax computes equal(x, x) and not_equal(x, x), which keep the weak type of "
        "a Python int).",
        isfinite_weak_type,
        "def program(x, y):\n    return jnp.isfinite(y)",
        X3, 3),
]

