"""Jaxprs: a program as data, recorded by tracing a Python function.

Staging a function means running it on ``JaxprTracer``s, which know only the
shapes and dtypes of their values.  Each primitive they meet is not computed
but written down as an equation ``outs = primitive[params] ins``.  The list of
equations, with the input and output variables, is a ``Jaxpr``: minijax's
intermediate language, printed as JAX prints its own.
"""
from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, NamedTuple

import numpy as np

from minijax.core import (
    Array, Primitive, ShapedArray, Trace, Tracer, get_aval, new_dynamic,
    new_main, to_array)
from minijax.tree_util import flatten_fun, tree_flatten


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


def closure_convert(jaxpr: Jaxpr) -> Jaxpr:
    """The same program with its constvars turned into leading invars."""
    return Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.eqns, jaxpr.outvars)


# ---------------------------------------------------------------------------
# Evaluating a jaxpr: an interpreter that binds each equation's primitive.


def eval_jaxpr(jaxpr: Jaxpr, consts: list, *args) -> list:
    """Run ``jaxpr``.  Binding each primitive means this works under any trace."""
    env: dict[Var, Any] = {}

    def read(atom: Atom):
        return atom.val if isinstance(atom, Literal) else env[atom]

    for var, val in zip(jaxpr.constvars + jaxpr.invars, [*consts, *args]):
        env[var] = val
    for eqn in jaxpr.eqns:
        outs = eqn.primitive.bind(*map(read, eqn.inputs), **eqn.params)
        outs = outs if eqn.primitive.multiple_results else [outs]
        env.update(zip(eqn.out_binders, outs))
    return [read(v) for v in jaxpr.outvars]


def jaxpr_as_fun(jaxpr: Jaxpr) -> Callable:
    return lambda *args: eval_jaxpr(jaxpr, [], *args)


# ---------------------------------------------------------------------------
# Staging: the trace that records equations.


class JaxprTracer(Tracer):
    __slots__ = ("aval",)

    def __init__(self, trace: Trace, aval: ShapedArray):
        self._trace = trace
        self.aval = aval


class JaxprTrace(Trace):
    @property
    def builder(self) -> JaxprBuilder:
        return self.main.global_data

    def new_arg(self, aval: ShapedArray) -> JaxprTracer:
        tracer = JaxprTracer(self, aval)
        self.builder.add_var(tracer)
        return tracer

    def get_or_make_const_tracer(self, val) -> JaxprTracer:
        """A constant (or a tracer of an outer transformation) becomes a constvar."""
        tracer = self.builder.const_tracers.get(id(val))
        if tracer is None:
            tracer = JaxprTracer(self, get_aval(val))
            self.builder.add_const(tracer, val)
        return tracer

    pure = lift = get_or_make_const_tracer

    def process_primitive(self, primitive, tracers, params):
        avals_out = primitive.abstract_eval(*[t.aval for t in tracers], **params)
        avals_out = avals_out if primitive.multiple_results else [avals_out]
        outs = [JaxprTracer(self, aval) for aval in avals_out]
        self.builder.add_eqn(JaxprEqn(
            primitive, [self.builder.var_of(t) for t in tracers], params,
            [self.builder.add_var(t) for t in outs]))
        return outs if primitive.multiple_results else outs[0]


class JaxprBuilder:
    """What staging has recorded so far: equations, variables, constants."""

    def __init__(self):
        self.eqns: list[JaxprEqn] = []
        self.tracer_to_var: dict[int, Var] = {}
        self.const_tracers: dict[int, JaxprTracer] = {}
        self.constvals: dict[Var, Any] = {}
        self.tracers: list[JaxprTracer] = []  # keeps ids unique while recording

    def add_var(self, tracer: JaxprTracer) -> Var:
        var = self.tracer_to_var[id(tracer)] = Var(tracer.aval)
        self.tracers.append(tracer)
        return var

    def var_of(self, tracer: JaxprTracer) -> Var:
        return self.tracer_to_var[id(tracer)]

    def add_const(self, tracer: JaxprTracer, val) -> None:
        self.const_tracers[id(val)] = tracer
        self.constvals[self.add_var(tracer)] = val
        self.tracers.append(val)  # keep val alive so its id is not reused

    def add_eqn(self, eqn: JaxprEqn) -> None:
        self.eqns.append(eqn)

    def build(self, in_tracers: list[JaxprTracer], out_tracers: list) -> tuple[Jaxpr, list]:
        constvars, constvals = list(self.constvals), list(self.constvals.values())
        jaxpr = Jaxpr(constvars, [self.var_of(t) for t in in_tracers], self.eqns,
                      [self.var_of(t) for t in out_tracers])
        return inline_scalar_literals(jaxpr, constvals)


def inline_scalar_literals(jaxpr: Jaxpr, consts: list) -> tuple[Jaxpr, list]:
    """Write concrete scalar constants into the equations instead of as constvars."""
    literals = {var: Literal(to_array(val)) for var, val in zip(jaxpr.constvars, consts)
                if not isinstance(val, Tracer) and get_aval(val).shape == ()}
    kept = [(v, c) for v, c in zip(jaxpr.constvars, consts) if v not in literals]
    # Only the equations that read a literal change (most do not: keep them).
    eqns = [eqn._replace(inputs=[literals.get(x, x) if isinstance(x, Var) else x
                                 for x in eqn.inputs])
            if any(x in literals for x in eqn.inputs) else eqn
            for eqn in jaxpr.eqns]
    outvars = [literals.get(v, v) if isinstance(v, Var) else v for v in jaxpr.outvars]
    new = Jaxpr([v for v, _ in kept], jaxpr.invars, eqns, outvars)
    return new, [c for _, c in kept]


def trace_to_jaxpr(flat_fun: Callable, in_avals: list[ShapedArray]) -> tuple[Jaxpr, list]:
    """Stage ``flat_fun`` (flat arguments, flat results) at the given input types."""
    builder = JaxprBuilder()
    with new_main(JaxprTrace, builder) as main:
        with new_dynamic(main):
            trace = JaxprTrace(main)
            tracers_in = [trace.new_arg(aval) for aval in in_avals]
            outs = flat_fun(*tracers_in)
            tracers_out = [trace.get_or_make_const_tracer(o) if not _is_own(o, main)
                           else o for o in outs]
            return builder.build(tracers_in, tracers_out)


def _is_own(x, main) -> bool:
    return isinstance(x, JaxprTracer) and x._trace.main is main


def make_jaxpr(fun: Callable, static_argnums: int | tuple[int, ...] = ()) -> Callable:
    """A function that returns the jaxpr ``fun`` stages for the given arguments."""
    static_argnums = (static_argnums,) if isinstance(static_argnums, int) else static_argnums

    @functools.wraps(fun)
    def make(*args) -> ClosedJaxpr:
        dynamic_fun, dynamic_args = bind_static_args(fun, args, static_argnums)
        flat_args, in_tree = tree_flatten(tuple(dynamic_args))
        flat_fun, _ = flatten_fun(lambda *a: dynamic_fun(*a), in_tree)
        jaxpr, consts = trace_to_jaxpr(flat_fun, [shaped_aval(x) for x in flat_args])
        return ClosedJaxpr(jaxpr, consts)

    return make


def shaped_aval(x) -> ShapedArray:
    return get_aval(x if isinstance(x, Tracer) else to_array(x))


def bind_static_args(fun: Callable, args: tuple, static_argnums) -> tuple[Callable, list]:
    """Split arguments into static ones, fixed into ``fun``, and dynamic ones."""
    static_argnums = {i % len(args) for i in static_argnums}
    if not static_argnums:
        return fun, list(args)
    statics = {i: args[i] for i in static_argnums}

    def with_statics(*dynamic):
        dynamic = iter(dynamic)
        return fun(*[statics[i] if i in statics else next(dynamic) for i in range(len(args))])

    return with_statics, [a for i, a in enumerate(args) if i not in statics]


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
    in an equation continues its enclosing jaxpr's names, except a jit's own."""

    def __init__(self):
        self.names: dict[Var, str] = {}
        self.fresh = _names()

    def __call__(self, atom: Atom) -> str:
        if isinstance(atom, Literal):
            return str(atom)
        if atom not in self.names:
            self.names[atom] = next(self.fresh)
        return self.names[atom]


def pp_jaxpr(jaxpr: Jaxpr, indent: int = 0, name: _Namer | None = None) -> str:
    name = name or _Namer()
    used = {x for eqn in jaxpr.eqns for x in eqn.inputs if isinstance(x, Var)}
    used |= {v for v in jaxpr.outvars if isinstance(v, Var)}
    used |= set(jaxpr.constvars) | set(jaxpr.invars)

    def binder(var: Var) -> str:  # an unused result is written `_`
        return f"{name(var) if var in used else '_'}:{var.aval.str_short()}"

    head = (f"{{ lambda {' '.join(map(binder, jaxpr.constvars))}; "
            f"{' '.join(map(binder, jaxpr.invars))}. let")
    eqns = [_pp_eqn(eqn, name, binder, indent + 4) for eqn in jaxpr.eqns]
    outs = ", ".join(map(name, jaxpr.outvars))
    tail = f"in ({outs},) }}" if len(jaxpr.outvars) == 1 else f"in ({outs}) }}"
    flat = f"{head} {'; '.join(eqns)} {tail}"
    if "\n" not in flat and indent + len(flat) <= _WIDTH:
        return flat
    pad = " " * indent
    body = "".join(f"\n{pad}    {eqn}" for eqn in eqns)
    return f"{head}{body}\n{pad}  {tail}"


def _pp_eqn(eqn: JaxprEqn, name: _Namer, binder: Callable, indent: int) -> str:
    lhs = " ".join(map(binder, eqn.out_binders))
    rhs = " ".join(map(name, eqn.inputs))
    # Parameters in alphabetical order, but a name first, as JAX prints them.
    keys = sorted(eqn.params, key=lambda k: (k != "name", k))
    # A jit's jaxpr starts its own names; other nested jaxprs continue ours.
    params = [f"{k}={_pp_param(eqn.params[k], indent + 2, None if k == 'jaxpr' else name)}"
              for k in keys]
    flat = f"{lhs} = {eqn.primitive.name}{'[' + ' '.join(params) + ']' if params else ''} {rhs}"
    if "\n" not in flat and indent + len(flat) <= _WIDTH:
        return flat.rstrip()
    pad = " " * indent
    lines = "".join(f"\n{pad}  {p}" for p in params)
    return f"{lhs} = {eqn.primitive.name}[{lines}\n{pad}] {rhs}".rstrip()


def _pp_param(value, indent: int, name: _Namer | None) -> str:
    if isinstance(value, Jaxpr):
        return pp_jaxpr(value, indent, name)
    if isinstance(value, tuple) and value and all(isinstance(v, Jaxpr) for v in value):
        pad = " " * indent
        return "(" + "".join(f"\n{pad}  {pp_jaxpr(v, indent + 2, name)}" for v in value) \
            + f"\n{pad})"
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, str):
        return value
    if callable(value):  # a rule carried by a custom-derivative equation
        return getattr(value, "__name__", type(value).__name__)
    return repr(value)
