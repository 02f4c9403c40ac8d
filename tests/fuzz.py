"""Differential fuzzing: random programs run on minijax and on JAX, compared.

A *program* is a function ``f(x, y)`` written in the public API, the way a user writes
one: ``jnp`` functions, operators, indexing and slicing, reductions, custom_jvp and
custom_vjp functions (with closures and nondiff_argnums), ``lax.cond``,
``lax.while_loop``, ``lax.fori_loop`` and ``lax.scan``, followed by a stack of one to
three transformations (jit, grad, value_and_grad, jvp, linearize, vjp, vmap). Hypothesis
draws it as a list of statements, each a few lines of source; ``Program.source()``
joins them into the text of a module, which is executed once with ``jax`` bound to
minijax and once with ``jax`` bound to JAX. So the program that runs is exactly the
program that a report prints.

The two results are compared with the book's own comparison, ``parity.differences``
(tree structure, shapes, dtypes, weak types, values at float32 tolerance, positions
of nan and inf), and the exceptions by type (and, for the messages the project
promises to match, by text). A mismatch is then looked up:

- in ``differences.DELIBERATE``, the differences minijax makes on purpose: skipped;
- in ``unfixed_bugs.UNFIXED_BUGS``, the bugs found and not fixed yet: skipped, counted;
- anything else fails.

Run from the command line for a long run, which prints each unexplained mismatch
shrunk to its smallest program::

    .venv/bin/python tests/fuzz.py 5000            # 5,000 programs, seed 0
    .venv/bin/python tests/fuzz.py 5000 --seed 7
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import io
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, NoSuchExample

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "book"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import parity  # noqa: E402
from differences import DELIBERATE  # noqa: E402
from unfixed_bugs import UNFIXED_BUGS  # noqa: E402

# ---------------------------------------------------------------------------
# What a program is made of

# Elementwise functions of one float array, each with its derivative: used as the
# bodies of custom rules, cond branches and loops, which must keep shape and dtype.
ELEMENTWISE = [
    ("jnp.sin({a})", "jnp.cos({a})"),
    ("jnp.tanh({a})", "1. - jnp.tanh({a}) ** 2"),
    ("{a} * {a}", "2. * {a}"),
    ("jnp.exp(-{a} * {a})", "-2. * {a} * jnp.exp(-{a} * {a})"),
    ("0.5 * {a} + 1.", "0.5 * jnp.ones_like({a})"),
    ("jnp.log1p({a} * {a})", "2. * {a} / (1. + {a} * {a})"),
    ("jnp.abs({a})", "jnp.sign({a})"),
    ("jnp.maximum({a}, 0.)", "jnp.where({a} > 0., 1., 0.)"),
    ("{a} ** 3", "3. * {a} ** 2"),
    ("jnp.sqrt({a} * {a} + 1.)", "{a} / jnp.sqrt({a} * {a} + 1.)"),
]

FLOAT_UNARY = ["sin", "cos", "tan", "tanh", "exp", "log", "log1p", "expm1", "sqrt"]
SAME_UNARY = ["negative", "abs", "absolute", "sign", "floor", "ceil", "round", "square"]
BINARY_FUNCTIONS = ["add", "subtract", "multiply", "divide", "true_divide", "power",
                    "maximum", "minimum", "less", "less_equal", "greater",
                    "greater_equal", "equal", "not_equal"]
OPERATORS = ["+", "-", "*", "/", "**", "<", "<=", ">", ">=", "==", "!="]
COMPARISONS = {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
               "<", "<=", ">", ">=", "==", "!="}
REDUCTIONS = ["sum", "max", "min", "amax", "amin", "mean", "any", "all"]

# Input values: mostly ordinary numbers on a grid (zeros, negatives, ties), some at
# the edges of float32 (huge, tiny, inf, nan).
GRID = [k / 4 for k in range(-12, 13)]
SPECIAL = [0.0, -0.0, 1e30, -1e30, 3e38, 1e-30, 88.5, -100.0, 1e4, -1e4,
           float("inf"), float("-inf"), float("nan")]
INTS = [-5, -3, -2, -1, 0, 1, 2, 3, 7, 100, -100, 2**31 - 1]


@dataclasses.dataclass
class Var:
    name: str
    shape: tuple
    kind: str  # "f" float32, "i" int32, "b" bool
    python: bool = False  # a Python scalar argument

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclasses.dataclass
class Transform:
    name: str
    params: dict


@dataclasses.dataclass
class Program:
    """f(x, y) as lines of source, a stack of transformations, and the inputs."""

    args: list  # [Var, Var]: the base arguments of f
    body: list  # lines of f's body
    stack: list  # [Transform], outermost first
    inputs: list  # values of the transformed function's arguments
    features: frozenset
    fixed_source: str | None = None  # a program written by hand (see from_source)

    @classmethod
    def from_source(cls, source: str, x: Any, y: Any) -> "Program":
        """A program written by hand: ``source`` defines ``program(x, y)``."""
        args = [Var("x", np.shape(x), "f"), Var("y", np.shape(y), "f")]
        return cls(args, [], [], [x, y], frozenset(), source.strip() + "\n")

    def source(self) -> str:
        if self.fixed_source is not None:
            return self.fixed_source
        lines = ["def f(x, y):"] + ["    " + line for line in self.body]
        name = "f"
        for depth, transform in enumerate(reversed(self.stack), start=1):
            lines += _render_transform(transform, name, f"f{depth}")
            name = f"f{depth}"
        lines.append(f"program = {name}")
        return "\n".join(lines) + "\n"

    def report_source(self) -> str:
        """A script that reproduces the program on JAX (replace jax by minijax)."""
        values = "\n".join(f"{a.name} = {_value_source(v)}"
                           for a, v in zip(self.args, self.inputs))
        return (f"{PRELUDE.format(lib='jax')}\n{self.source()}\n{values}\n"
                f"print(program({', '.join(a.name for a in self.args)}))\n")


PRELUDE = '''\
from functools import partial
import numpy as np
import {lib} as jax
import {lib}.numpy as jnp
from {lib} import lax

def total(out):
    """The sum of the float leaves of out: a scalar to differentiate."""
    return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(out)
               if jnp.asarray(leaf).dtype.name == "float32")

def scaled(out, c):
    """Tangents or cotangents for out: c times ones, leaf by leaf."""
    return jax.tree_util.tree_map(lambda leaf: jnp.ones_like(leaf) * c, out)
'''


def _render_transform(t: Transform, inner: str, outer: str) -> list[str]:
    p = t.params
    if t.name == "jit":
        return [f"{outer} = jax.jit({inner})"]
    if t.name == "vmap":
        return [f"{outer} = jax.vmap({inner}, in_axes={p['in_axes']!r}, "
                f"out_axes={p['out_axes']!r})"]
    diff = p["diff"]  # names of the differentiated arguments
    closed = ", ".join(["x", "y"])
    lam = f"lambda {', '.join(diff)}: "
    if t.name in ("grad", "value_and_grad"):
        argnums = p["argnums"]
        body = f"total({inner}(x, y))"
        if p["has_aux"]:
            body = f"(total({inner}(x, y)), {inner}(x, y))"
        return [f"def {outer}(x, y):",
                f"    return jax.{t.name}(lambda x, y: {body}, argnums={argnums!r}, "
                f"has_aux={p['has_aux']})(x, y)"]
    tangents = ", ".join(f"jnp.ones_like({d}) * {p['c']}" for d in diff)
    primals = ", ".join(diff)
    if t.name == "jvp":
        return [f"def {outer}(x, y):",
                f"    return jax.jvp({lam}{inner}({closed}), ({primals},), ({tangents},))"]
    if t.name == "linearize":
        return [f"def {outer}(x, y):",
                f"    out, f_jvp = jax.linearize({lam}{inner}({closed}), {primals})",
                f"    return out, f_jvp({tangents})"]
    if t.name == "vjp":
        return [f"def {outer}(x, y):",
                f"    out, f_vjp = jax.vjp({lam}{inner}({closed}), {primals})",
                f"    return out, f_vjp(scaled(out, {p['c']}))"]
    raise ValueError(t.name)


def _value_source(v: Any) -> str:
    if isinstance(v, (bool, int)):
        return repr(v)
    if isinstance(v, float):
        return f"float({str(v)!r})" if not np.isfinite(v) else repr(v)
    text = np.array2string(np.asarray(v), separator=", ", threshold=10**6,
                           floatmode="unique").replace("nan", "np.nan").replace(
                               "inf", "np.inf")
    return f"np.array({text}, np.{np.asarray(v).dtype.name})"


# ---------------------------------------------------------------------------
# Drawing a program


class _Builder:
    """State while drawing f's body: the variables so far and the source lines."""

    def __init__(self, draw, args: list[Var]):
        self.draw = draw
        self.vars = list(args)
        self.lines: list[str] = []
        self.features: set[str] = set()
        self.count = 0

    def fresh(self, prefix: str = "v") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def pick(self, kinds: str = "fib", min_ndim: int = 0, max_ndim: int = 9,
             arrays_only: bool = False) -> Var | None:
        options = [v for v in self.vars if v.kind in kinds
                   and min_ndim <= v.ndim <= max_ndim and not (arrays_only and v.python)]
        if not options:
            return None
        # Later values are more interesting (they depend on more of the program).
        return self.draw(st.sampled_from(options[::-1]))

    def add(self, var: Var, *lines: str, features: tuple = ()) -> None:
        self.lines += lines
        self.vars.append(var)
        self.features.update(features)


def _promote(*kinds: str) -> str:
    return max(kinds, key="bif".index)


def _constant(draw, kind: str) -> tuple[str, Var]:
    """A literal operand: a Python scalar or a strongly typed scalar."""
    if kind == "f":
        value = draw(st.sampled_from([2.0, 0.5, -1.5, 3.0, 0.0, 1e3]))
        text = draw(st.sampled_from([repr(value), f"jnp.float32({value!r})"]))
    else:
        value = draw(st.sampled_from([2, 3, -1, 0]))
        text = draw(st.sampled_from([repr(value), f"jnp.int32({value})"]))
    return text, Var(text, (), kind, python=not text.startswith("jnp"))


def _broadcasts(a: tuple, b: tuple) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def op_float_unary(b: _Builder):
    a = b.pick()
    if a is None:
        return
    fn = b.draw(st.sampled_from(FLOAT_UNARY))
    name = b.fresh()
    b.add(Var(name, a.shape, "f"), f"{name} = jnp.{fn}({a.name})", features=(fn,))


def op_same_unary(b: _Builder):
    a = b.pick("fi")
    if a is None:
        return
    form = b.draw(st.sampled_from(SAME_UNARY + ["-", "abs()", "isnan", "isfinite",
                                                 "zeros_like", "ones_like"]))
    name = b.fresh()
    kind = a.kind
    if form == "-":
        text = f"-{a.name}"
    elif form == "abs()":
        text = f"abs({a.name})"
    else:
        text = f"jnp.{form}({a.name})"
        kind = "b" if form in ("isnan", "isfinite") else kind
    b.add(Var(name, a.shape, kind), f"{name} = {text}", features=(form,))


def _operand(b: _Builder, shape: tuple, kinds: str = "fib") -> tuple[str, Var]:
    """A second operand that broadcasts with ``shape``: a variable or a literal."""
    options = [v for v in b.vars if v.kind in kinds and _broadcasts(v.shape, shape)]
    if options and b.draw(st.booleans()):
        v = b.draw(st.sampled_from(options[::-1]))
        return v.name, v
    return _constant(b.draw, b.draw(st.sampled_from([k for k in "fi" if k in kinds] or ["f"])))


def op_binary(b: _Builder):
    a = b.pick()
    if a is None:
        return
    text_b, vb = _operand(b, a.shape)
    if a.python and vb.python:  # Python's own arithmetic, not the library's
        text_b, vb = "x", b.vars[0]
    first, second = (a.name, text_b) if b.draw(st.booleans()) else (text_b, a.name)
    if vb.python and first == text_b and b.draw(st.booleans()):
        first, second = second, first  # Python scalars mostly on the right
    use_operator = b.draw(st.booleans())
    if use_operator:
        op = b.draw(st.sampled_from(OPERATORS))
        text = f"{first} {op} {second}"
        features = ("pow" if op == "**" else op,)
    else:
        op = b.draw(st.sampled_from(BINARY_FUNCTIONS))
        text = f"jnp.{op}({first}, {second})"
        features = (op,)
    if op in ("**", "power") and vb.kind == "f" and a.kind == "f":
        features += ("float_power",)
    kind = ("b" if op in COMPARISONS else "f" if op in ("/", "divide", "true_divide")
            else _promote(a.kind, vb.kind))
    shape = np.broadcast_shapes(a.shape, vb.shape)
    name = b.fresh()
    b.add(Var(name, shape, kind), f"{name} = {text}", features=features)


def op_where(b: _Builder):
    a = b.pick("fi")
    if a is None:
        return
    text_c, vc = _operand(b, a.shape, "fi")
    # The third operand broadcasts with both others, not only with the condition.
    text_d, vd = _operand(b, np.broadcast_shapes(a.shape, vc.shape), "fi")
    shape = np.broadcast_shapes(a.shape, vc.shape, vd.shape)
    name = b.fresh()
    threshold = b.draw(st.sampled_from(["0", "0.5", "1."]))
    b.add(Var(name, shape, _promote(vc.kind, vd.kind)),
          f"{name} = jnp.where({a.name} > {threshold}, {text_c}, {text_d})",
          features=("where",))


def op_reduce(b: _Builder):
    a = b.pick(arrays_only=True)
    if a is None:
        return
    fn = b.draw(st.sampled_from(REDUCTIONS))
    axes = [None] + list(range(-a.ndim, a.ndim))
    if a.ndim >= 2:
        axes.append((0, a.ndim - 1))
    axis = b.draw(st.sampled_from(axes))
    if axis is None:
        shape = ()
    else:
        kept = {x % a.ndim for x in (axis if isinstance(axis, tuple) else (axis,))}
        shape = tuple(s for i, s in enumerate(a.shape) if i not in kept)
    method = fn in ("sum", "max", "min", "mean", "any", "all") and b.draw(st.booleans())
    arg = "" if axis is None else f"axis={axis!r}"
    text = (f"{a.name}.{fn}({arg})" if method
            else f"jnp.{fn}({a.name}{', ' + arg if arg else ''})")
    kind = {"mean": "f", "any": "b", "all": "b"}.get(fn, "i" if a.kind == "b" and fn == "sum"
                                                   else a.kind)
    name = b.fresh()
    b.add(Var(name, shape, kind), f"{name} = {text}", features=(fn, "reduction"))


def op_shape(b: _Builder):
    a = b.pick(arrays_only=True)
    if a is None:
        return
    size = int(np.prod(a.shape))
    choices = ["reshape_flat", "ravel", "broadcast_to", "astype", "stack", "clip"]
    if a.ndim >= 2:
        choices += ["transpose", ".T", "reshape_2"]
    form = b.draw(st.sampled_from(choices))
    name = b.fresh()
    kind, shape = a.kind, a.shape
    if form == "reshape_flat":
        text = b.draw(st.sampled_from([f"jnp.reshape({a.name}, -1)", f"{a.name}.reshape(-1)",
                                       f"{a.name}.reshape(1, {size})"]))
        shape = (1, size) if "1, " in text else (size,)
    elif form == "reshape_2":
        text, shape = f"{a.name}.reshape({size}, 1)", (size, 1)
    elif form == "ravel":
        text = b.draw(st.sampled_from([f"{a.name}.ravel()", f"{a.name}.flatten()"]))
        shape = (size,)
    elif form == "broadcast_to":
        shape = (2,) + a.shape
        text = f"jnp.broadcast_to({a.name}, {shape!r})"
    elif form == "astype":
        dtype = b.draw(st.sampled_from(["float32", "int32", "bool_"]))
        text = f"{a.name}.astype(jnp.{dtype})"
        kind = dtype[0]
    elif form == "stack":
        others = [v for v in b.vars if v.shape == a.shape and not v.python]
        other = b.draw(st.sampled_from(others))
        axis = b.draw(st.sampled_from(range(-a.ndim - 1, a.ndim + 1)))
        text = f"jnp.stack([{a.name}, {other.name}], axis={axis})"
        shape = list(a.shape)
        shape.insert(axis % (a.ndim + 1), 2)
        shape, kind = tuple(shape), _promote(a.kind, other.kind)
    elif form == "clip":
        lo, hi = b.draw(st.sampled_from([(-1.0, 1.0), (0.0, None), (None, 0.5), (-2, 2)]))
        text = b.draw(st.sampled_from([f"jnp.clip({a.name}, {lo!r}, {hi!r})",
                                       f"{a.name}.clip({lo!r}, {hi!r})"]))
    elif form == "transpose":
        text = f"jnp.transpose({a.name})"
        shape = a.shape[::-1]
    else:  # .T
        text, shape = f"{a.name}.T", a.shape[::-1]
    b.add(Var(name, tuple(shape), kind), f"{name} = {text}", features=(form,))


INDEXES = {"[0]": 0, "[-1]": -1, "[1:]": slice(1, None), "[::-1]": slice(None, None, -1),
           "[::2]": slice(None, None, 2), "[None]": None, "[..., 0]": (Ellipsis, 0),
           "[:-1]": slice(None, -1), "[1::-1]": slice(1, None, -1), "[5]": 5}
INDEXES_2D = {"[:, 1]": (slice(None), 1), "[1:, ::-1]": (slice(1, None), slice(None, None, -1)),
              "[:, None]": (slice(None), None), "[-1, ::2]": (-1, slice(None, None, 2))}


def op_index(b: _Builder):
    a = b.pick(arrays_only=True, min_ndim=1)
    if a is None:
        return
    choices = dict(INDEXES, **(INDEXES_2D if a.ndim >= 2 else {}))
    index = b.draw(st.sampled_from(sorted(choices)))
    try:
        shape = np.empty(a.shape)[choices[index]].shape
    except IndexError:  # out of bounds: an error on both sides
        shape = a.shape[1:]
    ints = [v for v in b.vars if v.kind == "i" and v.shape == ()]
    if ints and b.draw(st.integers(0, 2)) == 0:
        index = f"[{b.draw(st.sampled_from(ints)).name}]"  # an integer scalar, traced
        shape = a.shape[1:]
    name = b.fresh()
    features = ["indexing"] + (["negative_step"] if "::-1" in index else [])
    b.add(Var(name, shape, a.kind), f"{name} = {a.name}{index}", features=tuple(features))


def op_dot(b: _Builder):
    a = b.pick("fi", min_ndim=1, max_ndim=2, arrays_only=True)
    if a is None:
        return
    n = a.shape[-1]
    others = [v for v in b.vars if v.kind in "fi" and 1 <= v.ndim <= 2 and v.shape[0] == n
              and not v.python]
    if others and b.draw(st.booleans()):
        other = b.draw(st.sampled_from(others))
        text_b, shape_b, kind_b = other.name, other.shape, other.kind
    else:
        shape_b = b.draw(st.sampled_from([(n,), (n, 2)]))
        text_b = (f"jnp.linspace(-1., 1., {n})" if len(shape_b) == 1
                  else f"jnp.arange({2 * n}.).reshape({n}, 2)")
        kind_b = "f"
    form = b.draw(st.sampled_from(["jnp.dot({}, {})", "jnp.matmul({}, {})", "{} @ {}",
                                   "{}.dot({})"]))
    with np.errstate(all="ignore"):
        shape = np.matmul(np.zeros(a.shape), np.zeros(shape_b)).shape
    name = b.fresh()
    b.add(Var(name, shape, _promote(a.kind, kind_b)),
          f"{name} = {form.format(a.name, text_b)}", features=("dot",))


def op_constant(b: _Builder):
    form = b.draw(st.sampled_from(["arange", "ones", "zeros", "linspace", "array"]))
    name = b.fresh()
    if form == "arange":
        text, shape, kind = "jnp.arange(3)", (3,), "i"
    elif form == "ones":
        text, shape, kind = "jnp.ones((2, 3))", (2, 3), "f"
    elif form == "zeros":
        text, shape, kind = "jnp.zeros(3, jnp.int32)", (3,), "i"
    elif form == "linspace":
        text, shape, kind = "jnp.linspace(0., 1., 3)", (3,), "f"
    else:
        text, shape, kind = "jnp.array([1., -2., 0.5])", (3,), "f"
    b.add(Var(name, shape, kind), f"{name} = {text}", features=(form,))


def _closure(b: _Builder) -> tuple[str, tuple]:
    """What a custom rule's function multiplies by: nothing, a constant, or a value
    of the enclosing function (traced when f is transformed)."""
    choice = b.draw(st.sampled_from(["none", "constant", "traced"]))
    if choice == "none":
        return "", ()
    if choice == "constant":
        return " * 1.5", ("closure",)
    v = b.pick("f")
    if v is None:
        return " * 1.5", ("closure",)
    c = b.fresh("c")
    b.lines.append(f"{c} = jnp.mean({v.name})")
    return f" * {c}", ("closure", "closure_traced")


def op_custom_jvp(b: _Builder):
    a = b.pick("f")
    if a is None:
        return
    value, derivative = b.draw(st.sampled_from(ELEMENTWISE))
    if b.draw(st.integers(0, 4)) == 0:  # any linear rule is allowed, right or not
        derivative = b.draw(st.sampled_from(ELEMENTWISE))[1]
    value, derivative = value.format(a="a"), derivative.format(a="a")
    g, name = b.fresh("g"), b.fresh()
    form = b.draw(st.sampled_from(["defjvp", "defjvp_no_call", "defjvps", "nondiff"]))
    scale, features = ("", ()) if form == "nondiff" else _closure(b)
    features += ("custom_jvp", form)
    if form == "nondiff":
        k = b.draw(st.sampled_from(["2.0", "-1", "0.5"]))
        lines = ["@partial(jax.custom_jvp, nondiff_argnums=(0,))",
                 f"def {g}(k, a):",
                 f"    return ({value}) * k",
                 f"@{g}.defjvp",
                 f"def {g}_jvp(k, primals, tangents):",
                 "    (a,), (t,) = primals, tangents",
                 f"    return {g}(k, a), ({derivative}) * k * t",
                 f"{name} = {g}({k}, {a.name})"]
    else:
        lines = ["@jax.custom_jvp", f"def {g}(a):", f"    return ({value}){scale}"]
        if form == "defjvps":
            lines += [f"{g}.defjvps(lambda t, ans, a: ({derivative}){scale} * t)"]
        else:
            primal = f"{g}(a)" if form == "defjvp" else f"({value}){scale}"
            lines += [f"@{g}.defjvp", f"def {g}_jvp(primals, tangents):",
                      "    (a,), (t,) = primals, tangents",
                      f"    return {primal}, ({derivative}){scale} * t"]
        lines.append(f"{name} = {g}({a.name})")
    b.add(Var(name, a.shape, "f"), *lines, features=features)


def op_custom_vjp(b: _Builder):
    a = b.pick("f")
    if a is None:
        return
    value, derivative = b.draw(st.sampled_from(ELEMENTWISE))
    value, derivative = value.format(a="a"), derivative.format(a="a")
    h, name = b.fresh("h"), b.fresh()
    form = b.draw(st.sampled_from(["fwd_calls_f", "fwd_recomputes", "nondiff", "two_args"]))
    features = ("custom_vjp", form)
    if form == "nondiff":
        k = b.draw(st.sampled_from(["2.0", "-1", "0.5"]))
        lines = ["@partial(jax.custom_vjp, nondiff_argnums=(0,))",
                 f"def {h}(k, a):", f"    return ({value}) * k",
                 f"def {h}_fwd(k, a):", f"    return {h}(k, a), (a,)",
                 f"def {h}_bwd(k, res, g):", "    (a,) = res",
                 f"    return (({derivative}) * k * g,)",
                 f"{h}.defvjp({h}_fwd, {h}_bwd)", f"{name} = {h}({k}, {a.name})"]
    elif form == "two_args":
        others = [v for v in b.vars if v.kind == "f" and v.shape == a.shape
                  and not v.python and v is not a]
        other = (b.draw(st.sampled_from(others)).name if others and b.draw(st.booleans())
                 else f"jnp.ones_like({a.name}) * 1.5")
        lines = ["@jax.custom_vjp", f"def {h}(a, b):", f"    return ({value}) * b",
                 f"def {h}_fwd(a, b):", f"    return {h}(a, b), (a, b)",
                 f"def {h}_bwd(res, g):", "    a, b = res",
                 f"    return (({derivative}) * b * g, ({value}) * g)",
                 f"{h}.defvjp({h}_fwd, {h}_bwd)", f"{name} = {h}({a.name}, {other})"]
    else:
        scale, closure = _closure(b)
        features += closure
        primal = f"{h}(a)" if form == "fwd_calls_f" else f"({value}){scale}"
        lines = ["@jax.custom_vjp", f"def {h}(a):", f"    return ({value}){scale}",
                 f"def {h}_fwd(a):", f"    return {primal}, (a,)",
                 f"def {h}_bwd(res, g):", "    (a,) = res",
                 f"    return (({derivative}){scale} * g,)",
                 f"{h}.defvjp({h}_fwd, {h}_bwd)", f"{name} = {h}({a.name})"]
    b.add(Var(name, a.shape, "f"), *lines, features=features)


def op_cond(b: _Builder):
    a = b.pick("f")
    if a is None:
        return
    p = b.pick("f")
    pred = b.draw(st.sampled_from([f"jnp.sum({p.name}) > 0.", f"jnp.max({p.name}) < 1.",
                                   "True", "False"]))
    branches = [b.draw(st.sampled_from(ELEMENTWISE))[0].format(a="a") for _ in range(2)]
    features = ("cond",)
    if b.draw(st.integers(0, 9)) == 0:  # branches of different types: an error
        branches[1] = b.draw(st.sampled_from(["a > 0.", "jnp.stack([a, a])", "(a, a)"]))
        features += ("cond_type_error",)
    name = b.fresh()
    b.add(Var(name, a.shape, "f"),
          f"{name} = lax.cond({pred}, lambda a: {branches[0]}, lambda a: {branches[1]}, "
          f"{a.name})", features=features)


def op_while(b: _Builder):
    a = b.pick("f")
    if a is None:
        return
    n = b.draw(st.sampled_from([0, 1, 3]))
    step = b.draw(st.sampled_from(ELEMENTWISE))[0].format(a="c[1]")
    features = ("while_loop",)
    if b.draw(st.integers(0, 9)) == 0:  # the carry changes shape: an error
        step = "jnp.stack([c[1], c[1]])"
        features += ("while_type_error",)
    name = b.fresh()
    b.add(Var(name, a.shape, "f"),
          f"{name} = lax.while_loop(lambda c: c[0] < {n}, lambda c: (c[0] + 1, {step}), "
          f"(0, {a.name}))[1]", features=features)


def op_fori(b: _Builder):
    a = b.pick("f")
    if a is None:
        return
    n = b.draw(st.sampled_from([0, 2, 3]))
    step = b.draw(st.sampled_from(ELEMENTWISE))[0].format(a="a")
    use_i = b.draw(st.sampled_from(["", " + i * 0.25"]))
    name = b.fresh()
    b.add(Var(name, a.shape, "f"),
          f"{name} = lax.fori_loop(0, {n}, lambda i, a: {step}{use_i}, {a.name})",
          features=("fori_loop",))


def op_scan(b: _Builder):
    a = b.pick("f")
    if a is None:
        return
    step = b.draw(st.sampled_from(ELEMENTWISE))[0].format(a="c")
    features = ("scan",)
    if b.draw(st.integers(0, 9)) == 0:  # the carry changes shape: an error
        step = "jnp.stack([c, c])"
        features += ("scan_type_error",)
    options = b.draw(st.sampled_from(["", ", reverse=True"]))
    which = b.draw(st.sampled_from([0, 1]))  # the last carry, or the stacked ys
    name = b.fresh()
    if a.ndim and not a.python and b.draw(st.booleans()):  # over a's leading axis
        shape = a.shape[1:] if which == 0 else a.shape
        call = f"lax.scan(lambda c, x: ({step} + x, c * x), {a.name}[0], {a.name}{options})"
    else:
        n = b.draw(st.sampled_from([1, 3] if which else [0, 1, 3]))
        shape = a.shape if which == 0 else (n, *a.shape)
        call = f"lax.scan(lambda c, _: ({step}, c), {a.name}, length={n}{options})"
    b.add(Var(name, shape, "f"), f"{name} = {call}[{which}]", features=features)


OPERATIONS = [op_float_unary, op_same_unary, op_binary, op_binary, op_where, op_reduce,
              op_shape, op_index, op_dot, op_constant, op_custom_jvp, op_custom_vjp,
              op_cond, op_while, op_fori, op_scan]

X_SHAPES = [(), (3,), (2, 3), (4,)]


@st.composite
def arguments(draw) -> list[Var]:
    x = Var("x", draw(st.sampled_from(X_SHAPES)), "f")
    kind = draw(st.sampled_from(["same", "row", "scalar", "int_array", "int_scalar",
                                 "python_float", "python_int"]))
    if kind == "same":
        y = Var("y", x.shape, "f")
    elif kind == "row":
        y = Var("y", x.shape[-1:], "f")
    elif kind == "scalar":
        y = Var("y", (), "f")
    elif kind == "int_array":
        y = Var("y", x.shape, "i")
    elif kind == "int_scalar":
        y = Var("y", (), "i")
    else:
        y = Var("y", (), kind[7], python=True)  # "python_float" -> "f"
    return [x, y]


def _differentiable(args: list[Var]) -> list[str]:
    return [a.name for a in args if a.kind == "f"]


@st.composite
def transforms(draw, args: list[Var]) -> list[Transform]:
    """A stack of up to three transformations, outermost first."""
    depth = draw(st.integers(0, 3))
    names = draw(st.lists(st.sampled_from(["jit", "grad", "value_and_grad", "jvp",
                                           "linearize", "vjp", "vmap", "vmap"]),
                          min_size=depth, max_size=depth))
    diffable = _differentiable(args)
    stack = []
    for name in names:
        if name == "jit":
            stack.append(Transform("jit", {}))
        elif name == "vmap":
            stack.append(Transform("vmap", {}))  # axes are drawn with the shapes
        else:
            diff = draw(st.sampled_from([[d] for d in diffable] + [diffable]))
            params: dict[str, Any] = {"diff": diff, "c": draw(st.sampled_from([1.0, -0.5, 2.0]))}
            if name in ("grad", "value_and_grad"):
                positions = [["x", "y"].index(d) for d in diff]
                params["argnums"] = positions[0] if len(positions) == 1 and draw(
                    st.booleans()) else tuple(positions)
                params["has_aux"] = draw(st.integers(0, 3)) == 0
            stack.append(Transform(name, params))
    return stack


def _draw_vmaps(draw, stack: list[Transform], args: list[Var]) -> list[tuple]:
    """Choose each vmap's axes, innermost first, and return the outer input shapes."""
    shapes = [a.shape for a in args]
    for t in reversed(stack):
        if t.name != "vmap":
            continue
        size = draw(st.sampled_from([2, 3]))
        axes = []
        for a, shape in zip(args, shapes):
            if a.python:
                axes.append(None)
                continue
            choices = [0, -1, None] + ([1] if len(shape) >= 1 else [])
            axes.append(draw(st.sampled_from(choices)))
        if all(axis is None for axis in axes):
            axes[0] = 0
        for i, axis in enumerate(axes):
            if axis is not None:
                s = list(shapes[i])
                s.insert(axis % (len(s) + 1), size)
                shapes[i] = tuple(s)
        in_axes = axes[0] if axes[0] == axes[1] and draw(st.booleans()) else tuple(axes)
        t.params.update(in_axes=in_axes, out_axes=draw(st.sampled_from([0, -1])))
    return shapes


def _value(draw, kind: str, python: bool):
    if kind == "f":
        special = draw(st.integers(0, 9)) == 0
        value = draw(st.sampled_from(SPECIAL if special else GRID))
        return float(value) if python else value
    return draw(st.sampled_from(INTS[:10] if python else INTS))


@st.composite
def programs(draw) -> Program:
    args = draw(arguments())
    b = _Builder(draw, args)
    for _ in range(draw(st.integers(1, 5))):
        draw(st.sampled_from(OPERATIONS))(b)
    stack = draw(transforms(args))
    differentiating = any(t.name not in ("jit", "vmap") for t in stack)
    computed = [v for v in b.vars[2:] if v.kind == "f" or not differentiating]
    if not computed:
        name = b.fresh()
        b.add(Var(name, b.vars[-1].shape, "f"), f"{name} = {b.vars[-1].name} * 1.0")
        computed = [b.vars[-1]]
    first = computed[-1] if draw(st.integers(0, 3)) else draw(st.sampled_from(computed))
    second = draw(st.sampled_from(computed))
    shape = draw(st.sampled_from(["single", "single", "single", "tuple", "dict"]))
    ret = {"single": first.name, "tuple": f"({first.name}, {second.name})",
           "dict": f"{{'a': {first.name}, 'b': [{second.name}]}}"}[shape]
    b.lines.append(f"return {ret}")
    shapes = _draw_vmaps(draw, stack, args)
    inputs = []
    for a, s in zip(args, shapes):
        if a.python:
            inputs.append(_value(draw, a.kind, True))
        else:
            size = int(np.prod(s))
            values = draw(st.lists(st.just(None), min_size=size, max_size=size))
            values = [_value(draw, a.kind, False) for _ in values]
            inputs.append(np.array(values, np.float32 if a.kind == "f" else np.int32)
                          .reshape(s))
    features = set(b.features) | {t.name for t in stack}
    if any(t.name == "vmap" and t.params["out_axes"] != 0 for t in stack):
        features.add("out_axes")
    return Program(args, b.lines, stack, inputs, frozenset(features))


# ---------------------------------------------------------------------------
# Running a program on both libraries and comparing


@dataclasses.dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None


@dataclasses.dataclass
class Mismatch:
    """A program on which minijax and JAX disagree."""

    program: Program
    mini: Outcome
    real: Outcome
    problems: list[str]

    @property
    def source(self) -> str:
        return self.program.source()

    def rerun(self, library: str, inputs: list | None = None, nudge: float = 0.0) -> "Outcome":
        """The same program on other inputs, or with its sin, exp... nudged (for the
        registries' matchers)."""
        program = self.program if inputs is None else dataclasses.replace(self.program,
                                                                          inputs=inputs)
        return run(program, library, nudge)

    def text(self) -> str:
        """Everything a pattern may look at: the problems, both exceptions, the source."""
        parts = list(self.problems)
        for side, outcome in (("minijax", self.mini), ("JAX", self.real)):
            if outcome.error is not None:
                parts.append(f"{side} raised {type(outcome.error).__name__}: {outcome.error}")
        return "\n".join(parts)

    def describe(self) -> str:
        return (f"{self.program.report_source()}\n"
                f"# minijax: {_outcome_text(self.mini)}\n# JAX:     {_outcome_text(self.real)}\n"
                + "".join(f"# {line}\n" for p in self.problems for line in p.splitlines()))


def _outcome_text(outcome: Outcome) -> str:
    if outcome.error is not None:
        message = str(outcome.error).strip().splitlines()
        return f"raises {type(outcome.error).__name__}: {message[0] if message else ''}"[:300]
    return " ".join(repr(outcome.value).split())[:300]


def _namespace(library: str) -> dict:
    namespace: dict[str, Any] = {"__name__": "fuzzed"}
    exec(compile(PRELUDE.format(lib=library), "<prelude>", "exec"), namespace)
    return namespace


_NAMESPACES: dict[str, dict] = {}


class _Nudged:
    """A numpy module whose transcendental functions return their result moved by a
    relative ``nudge``: a few float32 steps, as another implementation might round."""

    def __init__(self, module, nudge: float):
        self._module, self._nudge = module, nudge

    def __getattr__(self, name):
        fn = getattr(self._module, name)
        if name not in FLOAT_UNARY:
            return fn
        return lambda x: fn(x) * (1. + self._nudge)


def run(program: Program, library: str, nudge: float = 0.0) -> Outcome:
    """Run the program on one library ("minijax" or "jax"); with ``nudge``, the
    results of sin, exp, tanh... are moved by that relative amount."""
    if library not in _NAMESPACES:
        _NAMESPACES[library] = _namespace(library)
    namespace = dict(_NAMESPACES[library])
    if nudge:
        namespace["jnp"] = _Nudged(namespace["jnp"], nudge)
    source = program.source()
    inputs = [np.copy(v) if isinstance(v, np.ndarray) else v for v in program.inputs]
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
            np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            exec(compile(source, "<program>", "exec"), namespace)
            return Outcome(value=namespace["program"](*inputs))
        except Exception as error:  # compared with the other library's
            return Outcome(error=error)


# JAX messages that minijax promises to match word for word: its other messages are
# often shorter (a deliberate difference), but these carry the information a user needs.
COMPARED_MESSAGES = ["cond branches must have equal output types",
                     "while_loop body function carry input and carry output",
                     "scan body function carry input and carry output"]


def compare(program: Program) -> Mismatch | None:
    mini, real = run(program, "minijax"), run(program, "jax")
    problems = []
    if mini.error is not None or real.error is not None:
        if type(mini.error).__name__ != type(real.error).__name__:
            problems.append(f"exception: minijax {_outcome_text(mini)}, JAX {_outcome_text(real)}")
        elif any(str(real.error).startswith(m) for m in COMPARED_MESSAGES) \
                and str(mini.error) != str(real.error):
            problems.append(f"message: minijax {str(mini.error)!r}, JAX {str(real.error)!r}")
    else:
        try:
            problems = parity.differences(mini.value, real.value, "result")
        except Exception as crash:  # noqa: BLE001  (a result the comparison cannot read)
            problems = [f"the comparison failed: {type(crash).__name__}: {crash}"]
    return Mismatch(program, mini, real, problems) if problems else None


def explain(mismatch: Mismatch) -> tuple[str, str] | None:
    """("deliberate" or "unfixed", the entry's name) if a registry knows the mismatch."""
    for entry in DELIBERATE:
        if entry.matches(mismatch):
            return "deliberate", entry.name
    for entry in UNFIXED_BUGS:
        if entry.matches(mismatch):
            return "unfixed", entry.name
    return None


def signature(mismatch: Mismatch) -> str:
    """A coarse name of what went wrong, to tell distinct failures apart."""
    if "exception" in mismatch.problems[0] or "message" in mismatch.problems[0]:
        def name(o):
            return type(o.error).__name__ if o.error is not None else "returns"
        words = re.sub(r"[\d.]+|'[^']*'|\[[^\]]*\]", "", str(mismatch.mini.error or ""))
        return f"minijax {name(mismatch.mini)} / JAX {name(mismatch.real)}: {words[:50]}"
    what = sorted({m.group(1) for p in mismatch.problems
                   for m in re.finditer(r"(shape|dtype|weak_type|values differ|gives a "
                                        r"\w+|items|keys|minijax gives)", p)})
    return "result: " + ", ".join(what)


# ---------------------------------------------------------------------------
# The statistics of a run


@dataclasses.dataclass
class Tally:
    programs: int = 0
    both_raised: int = 0
    agreed: int = 0
    deliberate: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    unfixed: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    unexplained: int = 0

    def record(self, mismatch: Mismatch | None, program: Program) -> tuple[str, str] | None:
        self.programs += 1
        if mismatch is None:
            self.agreed += 1
            return None
        known = explain(mismatch)
        if known is None:
            self.unexplained += 1
        elif known[0] == "deliberate":
            self.deliberate[known[1]] += 1
        else:
            self.unfixed[known[1]] += 1
        return known

    def summary(self) -> str:
        lines = [f"{self.programs} programs: {self.agreed} agree with JAX, "
                 f"{sum(self.deliberate.values())} differ deliberately, "
                 f"{sum(self.unfixed.values())} hit unfixed bugs (skipped), "
                 f"{self.unexplained} unexplained"]
        for title, counter in (("deliberate", self.deliberate), ("unfixed bug", self.unfixed)):
            for name, count in counter.most_common():
                lines.append(f"  {title} {name}: {count}")
        return "\n".join(lines)


SHRINK_BUDGET = 300  # programs tried while shrinking one mismatch (each runs both libraries)
SETTINGS = dict(deadline=None, database=None, print_blob=False,
                suppress_health_check=list(HealthCheck))


def long_run(count: int, seed: int, out: Callable[[str], None] = print) -> Tally:
    """Run ``count`` programs; shrink and print each distinct unexplained mismatch."""
    import random

    tally = Tally()
    found: dict[str, Mismatch] = {}
    rng = random.Random(seed)
    start = time.monotonic()
    while tally.programs < count:
        target: list[str] = []
        latest: list[Mismatch] = []  # the mismatch as found, then each smaller one
        shrink_steps = [0]

        def failing(program: Program) -> bool:
            if target:  # shrinking, within a budget of attempts
                shrink_steps[0] += 1
                if shrink_steps[0] > SHRINK_BUDGET:
                    return False
            mismatch = compare(program)
            if not target:  # exploring: count the program
                known = tally.record(mismatch, program)
                if tally.programs % 250 == 0:
                    out(f"... {tally.programs} programs, {time.monotonic() - start:.0f} s")
                if mismatch is None or known is not None:
                    return False
                key = signature(mismatch)
                if key in found:
                    return False
                target.append(key)
                latest.append(mismatch)
                return True
            # shrinking: keep the same kind of failure
            same = (mismatch is not None and explain(mismatch) is None
                    and signature(mismatch) == target[0])
            if same:
                latest.append(mismatch)
            return same

        remaining = count - tally.programs
        try:
            smallest = find(programs(), failing, random=rng,
                            settings=settings(max_examples=remaining, **SETTINGS))
        except NoSuchExample:
            break
        except Flaky:  # Hypothesis's last run of the smallest program did not fail
            mismatch = latest[-1]
            note = (f" (shrunk as far as {SHRINK_BUDGET} attempts went)"
                    if shrink_steps[0] > SHRINK_BUDGET else
                    " (not shrunk further: it did not always reproduce)")
        else:
            mismatch, note = compare(smallest), ""
        found[target[0]] = mismatch
        out(f"\n=== unexplained mismatch {len(found)}: {target[0]}{note}\n"
            f"{mismatch.describe()}")
    plural = "" if len(found) == 1 else "es"
    out(f"\n{tally.summary()}\n{len(found)} distinct unexplained mismatch{plural}, "
        f"{time.monotonic() - start:.0f} s")
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, nargs="?", default=1000,
                        help="how many programs to run (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tally = long_run(args.count, args.seed)
    return 1 if tally.unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
