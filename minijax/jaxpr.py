"""Jaxprs: a program as data (the jaxpr half of JAX's ``core.py``).

A ``Jaxpr`` is a list of equations ``outs = primitive[params] ins`` with input,
output and constant variables: minijax's intermediate language, printed as JAX
prints its own.  ``eval_jaxpr`` runs one by binding each equation's primitive,
so it works under any transformation.  Jaxprs are made by staging a function
(``partial_eval.trace_to_jaxpr``).
"""
from __future__ import annotations

import functools
import itertools
import re
from typing import Any, Callable, NamedTuple

import numpy as np

from minijax.core import Array, Primitive, ShapedArray
from minijax.tree_util import Store


class Var:
    """A variable of a jaxpr.  Names are given only when the jaxpr is printed."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval


class Literal:
    """A scalar constant written inline in an equation, like ``2.0:f32[]``."""

    __slots__ = ("val", "aval")

    def __init__(self, val: Array):
        self.val = val
        self.aval = val.aval

    def __str__(self):
        # str() prints a float32 as float32 (0.1); an f-string would widen it first.
        return f"{str(self.val._value[()])}:{self.aval.str_short()}"


Atom = Var | Literal


class JaxprEqn(NamedTuple):
    primitive: Primitive
    inputs: list[Atom]
    params: dict[str, Any]
    out_binders: list[Var]


class Jaxpr:
    """``{ lambda constvars ; invars . let eqns in outvars }``."""

    def __init__(self, constvars: list[Var], invars: list[Var], eqns: list[JaxprEqn],
                 outvars: list[Atom]):
        self.constvars = constvars
        self.invars = invars
        self.eqns = eqns
        self.outvars = outvars
        # What has been made from this jaxpr (its compiled code, its JVP...), so
        # that it is made once and goes away with the jaxpr: see cache_per_jaxpr.
        self.derived: dict = {}

    # Identity, not structure: a jaxpr is cached and compiled as the object it is.
    __hash__ = object.__hash__
    __eq__ = object.__eq__

    @property
    def in_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.invars]

    @property
    def out_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.outvars]

    def __str__(self):
        return pp_jaxpr(self)

    __repr__ = __str__


class ClosedJaxpr:
    """A jaxpr together with the values of its constvars: what make_jaxpr returns."""

    def __init__(self, jaxpr: Jaxpr, consts: list):
        self.jaxpr = jaxpr
        self.consts = consts

    in_avals = property(lambda self: self.jaxpr.in_avals)
    out_avals = property(lambda self: self.jaxpr.out_avals)
    eqns = property(lambda self: self.jaxpr.eqns)

    def __str__(self):
        return pp_jaxpr(self.jaxpr)

    __repr__ = __str__


def cache_per_jaxpr(fun: Callable) -> Callable:
    """Remember ``fun(jaxpr, *rest)`` in ``jaxpr.derived``.

    Transforming or compiling a jaxpr is done once and reused.  Kept in the
    jaxpr itself, the result is freed with it: the code compiled for a function
    that is gone does not stay in memory for the life of the program.
    """
    @functools.wraps(fun)
    def cached(jaxpr: Jaxpr, *rest):
        key = (fun, *rest)
        if key not in jaxpr.derived:
            jaxpr.derived[key] = fun(jaxpr, *rest)
        return jaxpr.derived[key]

    return cached


def convert_constvars_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """The same program with its constvars turned into leading invars."""
    return Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.eqns, jaxpr.outvars)


# ---------------------------------------------------------------------------
# Evaluating a jaxpr: an interpreter that binds each equation's primitive.


def eval_jaxpr(jaxpr: Jaxpr, consts: list, *args) -> list:
    """Run ``jaxpr``.  Binding each primitive means this works under any trace."""
    env: dict[Var, Any] = dict(zip(jaxpr.constvars + jaxpr.invars, [*consts, *args]))

    def read(atom: Atom):
        return atom.val if isinstance(atom, Literal) else env[atom]

    for eqn in jaxpr.eqns:
        subfuns, params = eqn.primitive.get_bind_params(eqn.params)
        outs = eqn.primitive.bind(*subfuns, *map(read, eqn.inputs), **params)
        outs = outs if eqn.primitive.multiple_results else [outs]
        env.update(zip(eqn.out_binders, outs))
    return [read(v) for v in jaxpr.outvars]


def jaxpr_as_fun(jaxpr: Jaxpr) -> Callable:
    return lambda *args: eval_jaxpr(jaxpr, [], *args)


# ---------------------------------------------------------------------------
# Printing jaxprs as JAX does.

_WIDTH = 80


def _names():
    # a, b, ..., z, ba, bb, ... as in JAX
    for size in itertools.count(1):
        for letters in itertools.product("abcdefghijklmnopqrstuvwxyz", repeat=size):
            if size == 1 or letters[0] != "a":
                yield "".join(letters)


class _Namer:
    """Names for variables, given in the order they are printed.  A jaxpr nested
    in an equation continues its enclosing jaxpr's names, except a jit's own.
    The compiler names the variables of its code alike, minus ``reserved`` names."""

    def __init__(self, literal: Callable[[Literal], str] = str, reserved=frozenset()):
        self.names: dict[Var, str] = {}
        self.fresh = (n for n in _names() if n not in reserved)
        self.literal = literal

    def __call__(self, atom: Atom) -> str:
        if isinstance(atom, Literal):
            return self.literal(atom)
        if atom not in self.names:
            self.names[atom] = next(self.fresh)
        return self.names[atom]


def pp_jaxpr(jaxpr: Jaxpr, indent: int = 0, name: _Namer | None = None,
             column: int | None = None) -> str:
    """The jaxpr as JAX prints it; its first line starts at ``column`` (after a
    parameter's name, say), the others at ``indent``."""
    name = name or _Namer()
    used = {*jaxpr.constvars, *jaxpr.invars, *jaxpr.outvars}
    used.update(x for eqn in jaxpr.eqns for x in eqn.inputs)

    def binder(var: Var) -> str:  # an unused result is written `_`
        return f"{name(var) if var in used else '_'}:{var.aval.str_short()}"

    head = (f"{{ lambda {' '.join(map(binder, jaxpr.constvars))}; "
            f"{' '.join(map(binder, jaxpr.invars))}. let")
    eqns = [_pp_eqn(eqn, name, binder, indent + 4) for eqn in jaxpr.eqns]
    outs = ", ".join(map(name, jaxpr.outvars))
    tail = f"in ({outs},) }}" if len(jaxpr.outvars) == 1 else f"in ({outs}) }}"
    flat = f"{head} {'; '.join(eqns)} {tail}"
    if "\n" not in flat and (indent if column is None else column) + len(flat) <= _WIDTH:
        return flat
    pad = " " * indent
    return head + "".join(f"\n{pad}    {eqn}" for eqn in eqns) + f"\n{pad}  {tail}"


def _pp_eqn(eqn: JaxprEqn, name: _Namer, binder: Callable, indent: int) -> str:
    lhs = " ".join(map(binder, eqn.out_binders))
    rhs = " ".join(map(name, eqn.inputs))
    # Parameters in alphabetical order, but a name first, as JAX prints them.
    # An output structure (a Store) is not shown, as JAX does not show its own.
    keys = sorted((k for k, v in eqn.params.items() if _shown(eqn.primitive, k, v)),
                  key=lambda k: (k != "name", k))
    # A jit's jaxpr starts its own names; other nested jaxprs (a scan's) continue ours.
    fresh = "jaxpr" if eqn.primitive.name == "jit" else None
    params = [f"{k}={_pp_param(eqn.params[k], indent + 2, None if k == fresh else name, k)}"
              for k in keys]
    flat = f"{lhs} = {eqn.primitive.name}{'[' + ' '.join(params) + ']' if params else ''} {rhs}"
    if "\n" not in flat and indent + len(flat) <= _WIDTH:
        return flat.rstrip()
    pad = " " * indent
    lines = "".join(f"\n{pad}  {p}" for p in params)
    return f"{lhs} = {eqn.primitive.name}[{lines}\n{pad}] {rhs}".rstrip()


def _shown(primitive: Primitive, key: str, value) -> bool:
    """JAX's printer leaves out broadcast_in_dim's shape (the result's type tells it),
    and its broadcast_dimensions when there are none."""
    if primitive.name == "broadcast_in_dim":
        return key != "shape" and (key != "broadcast_dimensions" or bool(value))
    return not isinstance(value, Store)


def _pp_param(value, indent: int, name: _Namer | None, key: str) -> str:
    if isinstance(value, Jaxpr):  # written after `key=`
        return pp_jaxpr(value, indent, name, indent + len(key) + 1)
    if isinstance(value, tuple) and value and all(isinstance(v, Jaxpr) for v in value):
        pad = " " * indent
        return "(" + "".join(f"\n{pad}  {pp_jaxpr(v, indent + 2, name)}" for v in value) \
            + f"\n{pad})"
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, str):
        return value
    if callable(value):  # a rule carried by a custom-rule equation: by its name, or
        name = getattr(value, "__name__", None)  # as it shows itself, addresses hidden as in JAX
        return name or re.sub(r" at 0x([0-9a-fA-F]+)", lambda m: " at 0x" + "X" * len(m[1]),
                              str(value))
    return repr(value)
