"""The core (JAX's ``core.py``): arrays, abstract values, primitives, and traces.

Every operation in minijax ends in ``primitive.bind(*args)``, which hands it to
the *current trace*.  With no transformation active that is the evaluation
trace, which runs the primitive's NumPy implementation.  A transformation makes
its own trace current while it runs a function; the trace transforms its own
tracers and sends everything else on to its parent, the trace that was current
before it.
"""
from __future__ import annotations

import operator
import warnings
from typing import Any, Callable

import numpy as np

from minijax import dtypes
from minijax.errors import (
    ConcretizationTypeError,
    TracerArrayConversionError,
    TracerBoolConversionError,
    TracerIntegerConversionError,
    UnexpectedTracerError,
)

# ---------------------------------------------------------------------------
# Abstract values: what a trace knows about a value it cannot see.


class ShapedArray:
    """An array's shape, dtype and weak type, without its values."""

    __slots__ = ("shape", "dtype", "weak_type", "_hash")

    def __init__(self, shape: tuple[int, ...], dtype, weak_type: bool = False):
        # Avals are made for every operation: skip conversions that are not needed.
        self.shape = shape if type(shape) is tuple else tuple(shape)
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        self.weak_type = weak_type
        self._hash = None

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

    def update(self, shape=None, dtype=None, weak_type=None) -> ShapedArray:
        """The same aval with the given fields changed."""
        return ShapedArray(self.shape if shape is None else shape,
                           self.dtype if dtype is None else dtype,
                           self.weak_type if weak_type is None else weak_type)

    def to_tangent_aval(self) -> ShapedArray:
        """The type of this type's tangents: itself for floats, float0 otherwise."""
        return self.update(dtype=dtypes.tangent_dtype(self.dtype))

    def str_short(self, short_dtypes: bool = True) -> str:
        """The short form used in jaxprs, like ``f32[3,4]`` (``float32[3,4]`` with
        ``short_dtypes=False``, as some of JAX's error messages write it)."""
        dtype = (_SHORT_DTYPE_NAMES[self.dtype] if short_dtypes or self.dtype == dtypes.float0
                 else self.dtype.name)
        return f"{dtype}[{','.join(map(str, self.shape))}]"

    def __eq__(self, other):
        return (type(other) is ShapedArray and self.shape == other.shape
                and self.dtype == other.dtype and self.weak_type == other.weak_type)

    def __hash__(self):  # avals key jit's cache: hashed once
        if self._hash is None:
            self._hash = hash((self.shape, self.dtype, self.weak_type))
        return self._hash

    def __str__(self):  # as tracers show their types: ~ marks a weak type
        return f"{'~' if self.weak_type else ''}{self.str_short(short_dtypes=False)}"

    def __repr__(self):
        weak = ", weak_type=True" if self.weak_type else ""
        return f"ShapedArray({self.str_short(short_dtypes=False)}{weak})"


_SHORT_DTYPE_NAMES = {dtypes.float32: "f32", dtypes.int32: "i32", dtypes.bool_: "bool",
                      dtypes.float0: "float0"}


# Python numbers are weakly typed: an int or float takes the type of the arrays it
# meets (bool is not: JAX gives Python bools a strong bool dtype).
_PYTHON_SCALAR_AVALS = {int: ShapedArray((), dtypes.int32, weak_type=True),
                        float: ShapedArray((), dtypes.float32, weak_type=True)}


def get_aval(x) -> ShapedArray:
    """The abstract value of anything minijax accepts as an array."""
    if type(x) in _TYPES_WITH_AVALS:
        return x.aval
    if type(x) in _PYTHON_SCALAR_AVALS:
        return _PYTHON_SCALAR_AVALS[type(x)]
    if isinstance(x, (bool, np.ndarray, np.generic)):
        value = np.asarray(x)
        return ShapedArray(value.shape, dtypes.canonicalize(value.dtype))
    raise TypeError(f"Value {x!r} of type {type(x).__name__} is not a valid minijax type")


# ---------------------------------------------------------------------------
# Concrete arrays and tracers alike.


class ArrayMethods:
    """What concrete arrays and tracers have in common.  Their operators and
    methods (``x + y``, ``x.sum()``...) are minijax.numpy functions, which is
    built on this module: it attaches them when it is imported."""

    __slots__ = ()
    __array_priority__ = 100  # NumPy defers to our reflected operators
    __hash__ = None  # arrays are mutable-looking values, as in NumPy and JAX

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: self.aval.ndim)
    size = property(lambda self: self.aval.size)


# ---------------------------------------------------------------------------
# Concrete arrays.


class Array(ArrayMethods):
    """A concrete minijax array: a NumPy array plus JAX's weak-type flag."""

    __slots__ = ("_value", "weak_type", "aval")

    def __init__(self, value: np.ndarray, weak_type: bool = False):
        self._value = value
        self.weak_type = weak_type

    def __getattr__(self, name: str):
        # ``aval`` is made on first use (many arrays never need it), then kept:
        # arrays never change, and reading a kept attribute calls no method.
        if name != "aval":
            raise AttributeError(name)
        self.aval = ShapedArray(self._value.shape, self._value.dtype, self.weak_type)
        return self.aval

    shape = property(lambda self: self._value.shape)
    dtype = property(lambda self: self._value.dtype)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._value, dtype)

    def __repr__(self):
        dtype = f"dtype={self.dtype.name}" + (", weak_type=True" if self.weak_type else "")
        body = (np.array2string(self._value, separator=", ", prefix="Array(", suffix=",")
                if self._value.size else f"[], shape={self._value.shape}")
        # JAX's layout: a dtype that would make the last line too long is set off
        # by six spaces (the width of "Array("), still on that line.
        last_line = len(body) - body.rfind("\n") + 1
        too_long = last_line + len(dtype) + 2 > np.get_printoptions()["linewidth"]
        return f"Array({body},{' ' * 6 if too_long else ' '}{dtype})"

    def __str__(self):
        return str(self._value)

    def __format__(self, spec):
        return format(self._value.item() if self._value.ndim == 0 else self._value, spec)

    def __bool__(self):
        return bool(self._value)

    def __float__(self):
        return float(self._value)

    def __int__(self):
        return int(self._value)

    def __index__(self):
        return operator.index(self._value.item())

    def item(self):
        return self._value.item()

    def tolist(self):
        return self._value.tolist()


# The types that carry their abstract value: arrays, and every kind of tracer
# (Tracer.__init_subclass__ adds each).
_TYPES_WITH_AVALS: set[type] = {Array}


def to_array(x) -> Array:
    """Wrap a Python scalar, NumPy value or Array as an Array of minijax's dtypes."""
    return x if isinstance(x, Array) else as_array(x, get_aval(x))


# ---------------------------------------------------------------------------
# The current trace.
#
# At any moment exactly one trace is *current*: the one that receives every
# primitive that is bound.  With no transformation active it is the evaluation
# trace, which just computes.  A transformation makes its own trace current
# while it runs the user's function; a trace, in turn, makes its parent current
# while it runs a rule, so the operations of the rule go to the transformation
# below it.  Dispatch depends on this context only, never on the arguments.


class TracingContext:
    """Where the current trace is kept (JAX keeps it per thread)."""

    __slots__ = ("trace",)

    def __init__(self):
        self.trace: Trace | None = None


trace_ctx = TracingContext()


class set_current_trace:  # noqa: N801  (JAX's name; a class, as it is used so often)
    """Make ``trace`` current for the duration of a ``with`` block."""

    __slots__ = ("trace", "previous")

    def __init__(self, trace: Trace):
        self.trace = trace

    def __enter__(self):
        self.previous, trace_ctx.trace = trace_ctx.trace, self.trace

    def __exit__(self, *exception):
        trace_ctx.trace = self.previous


class take_current_trace(set_current_trace):  # noqa: N801
    """Hand out the current trace and make the evaluation trace current meanwhile:
    how a transformation finds the trace it will put its own on top of."""

    __slots__ = ()

    def __init__(self):
        super().__init__(eval_trace)

    def __enter__(self) -> Trace:
        super().__enter__()
        return self.previous


# ---------------------------------------------------------------------------
# Primitives and bind.


class Primitive:
    """A named operation that every trace knows how to process.

    ``impl`` runs it on NumPy arrays; ``abstract_eval`` gives the shapes and dtypes
    of its results from those of its arguments.  The transformations register
    further rules (derivative, transposition, batching) in tables keyed by the
    primitive.
    """

    multiple_results = False

    def __init__(self, name: str):
        self.name = name
        self.impl: Callable[..., Any] | None = None
        self.abstract_eval: Callable[..., Any] | None = None

    def __repr__(self):
        return self.name

    def def_impl(self, impl):
        self.impl = impl
        return impl

    def def_abstract_eval(self, rule):
        self.abstract_eval = rule
        return rule

    def bind(self, *args, **params):
        """Apply the primitive: the current trace decides what that means."""
        for arg in args:
            if isinstance(arg, Tracer) and arg._trace._invalidated:
                raise UnexpectedTracerError(escaped_tracer_message(arg))
        # As in JAX, the evaluation trace is current while a trace processes the
        # primitive: a trace must say which trace its rules run in.
        trace, trace_ctx.trace = trace_ctx.trace, eval_trace
        try:
            return self.bind_with_trace(trace, args, params)
        finally:
            trace_ctx.trace = trace

    def bind_with_trace(self, trace: Trace, args, params: dict):
        """Hand the primitive to ``trace``.  Primitives that carry Python functions
        (custom rules) override this to call the trace's method for them."""
        return trace.process_primitive(self, args, params)

    def get_bind_params(self, params: dict) -> tuple[list, dict]:
        """The functions and parameters to bind a staged equation of this primitive
        with: its parameters as they are, for most primitives."""
        return [], params


# ---------------------------------------------------------------------------
# Traces and tracers.


class TraceTag:
    """What a transformation's tracers are recognised by.  A trace made again
    for the same transformation (to run a rule, say) gets the same tag, so the
    tracers of the first are its own too."""

    __slots__ = ()


class Trace:
    """How one transformation interprets primitives.

    A trace is made with its *parent*, the trace that was current when the
    transformation started, and a tag.  It treats its own tracers (those with its
    tag) as values it transforms and every other value as a constant, and it runs
    its rules with the parent current.  A transformation may invalidate its trace
    when it ends (vmap and jit do; jvp and linearize, as in JAX, do not), and
    ``bind`` then refuses its tracers.  Each kind of trace defines
    ``process_primitive``, ``process_custom_jvp_call`` and ``process_custom_vjp_call``.
    """

    def __init__(self, parent_trace: Trace | None = None, tag: TraceTag | None = None):
        self.parent_trace = parent_trace
        self.tag = TraceTag() if tag is None else tag
        self._invalidated = False

    def invalidate(self) -> None:
        self._invalidated = True

    def is_valid(self) -> bool:
        return not self._invalidated

    def __repr__(self):
        return type(self).__name__


class Tracer(ArrayMethods):
    """A value that is being traced by the trace ``_trace``.

    Subclasses define ``aval``.  A tracer knows a concrete value only when its
    transformation keeps one (forward mode does, staging for jit does not); that
    is what decides whether Python control flow on it can work.
    """

    __slots__ = ("_trace",)
    weak_type = property(lambda self: self.aval.weak_type)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _TYPES_WITH_AVALS.add(cls)

    def to_concrete_value(self):
        """The concrete value behind this tracer, or None if there is none."""
        return None

    def concrete_value(self, reason: str):
        value = self.to_concrete_value()
        if value is None:
            raise ConcretizationTypeError(_abstract_value_message(self, reason))
        return value

    def __bool__(self):
        try:
            return bool(self.concrete_value("bool"))
        except ConcretizationTypeError:
            raise TracerBoolConversionError(
                f"Attempted boolean conversion of traced array with shape "
                f"{self.aval.str_short()}.\n{_WHY_NOT_CONCRETE}") from None

    def __float__(self):
        # As in JAX, float() never looks through a tracer, even one with a primal.
        raise ConcretizationTypeError(_abstract_value_message(self, "float"))

    def item(self):
        raise ConcretizationTypeError(_abstract_value_message(self, "item"))

    def __int__(self):
        return int(self.concrete_value("int"))

    def __index__(self):
        try:
            return operator.index(self.concrete_value("index").item())
        except ConcretizationTypeError:
            raise TracerIntegerConversionError(
                f"The __index__() method was called on traced array with shape "
                f"{self.aval.str_short()}.\n{_WHY_NOT_CONCRETE}") from None

    def __array__(self, dtype=None, copy=None):
        raise TracerArrayConversionError(
            f"The numpy.ndarray conversion method __array__() was called on traced "
            f"array with shape {self.aval.str_short()}.\n{_WHY_NOT_CONCRETE}")

    def _short_repr(self) -> str:
        return f"{type(self).__name__}<{self.aval}>"

    def __repr__(self):
        return self._short_repr()


def short_repr(x) -> str:
    """How a tracer shows a value it holds: a tracer briefly, an array by its values."""
    return x._short_repr() if isinstance(x, Tracer) else str(x)


_WHY_NOT_CONCRETE = (
    "This value is traced: while a transformation such as jit, vmap or make_jaxpr "
    "traces a function, its value is not known yet, so Python cannot branch on it "
    "or convert it. Use minijax.numpy.where or minijax.lax.cond for choices that "
    "depend on values, or compute the value outside the transformed function.")


def _abstract_value_message(tracer: Tracer, reason: str) -> str:
    return (f"Abstract tracer value encountered where concrete value is expected: "
            f"traced array with shape {tracer.aval.str_short()}\n"
            f"The problem arose with the `{reason}` function.\n{_WHY_NOT_CONCRETE}")


def escaped_tracer_message(tracer: Tracer) -> str:
    """JAX's words for a tracer used outside the transformation that made it."""
    return (f"Encountered an unexpected tracer. A function transformed by JAX had a side "
            f"effect, allowing for a reference to an intermediate value with type "
            f"{tracer.aval.str_short(short_dtypes=False)} wrapped in a "
            f"{type(tracer).__name__} to escape the scope of the transformation.\nJAX "
            f"transformations require that functions explicitly return their outputs, and "
            f"disallow saving intermediate values to global state.\nTo catch the leak "
            f"earlier, try setting the environment variable JAX_CHECK_TRACER_LEAKS or using "
            f"the `jax.checking_leaks` context manager.")


class EvalTrace(Trace):
    """The trace at the bottom: no transformation, primitives just run."""

    def process_primitive(self, primitive, args, params):
        avals, values = [], []
        for x in args:
            array = x if type(x) is Array else _eval_operand(x)
            avals.append(array.aval)
            values.append(array._value)
        out_avals = primitive.abstract_eval(*avals, **params)
        outs = primitive.impl(*values, **params)
        if primitive.multiple_results:
            return [as_array(o, aval) for o, aval in zip(outs, out_avals)]
        return as_array(outs, out_avals)

    def process_custom_jvp_call(self, primitive, fun, jvp, args, **params):
        return fun(*args)  # no derivative is asked for: the rule never runs

    def process_custom_vjp_call(self, primitive, fun, fwd, bwd, args, **params):
        return fun(*args)


def _eval_operand(x) -> Array:
    """A tracer reaching the evaluation trace was used outside its transformation."""
    if isinstance(x, Tracer):
        raise UnexpectedTracerError(escaped_tracer_message(x))
    return to_array(x)


def as_array(value, aval: ShapedArray) -> Array:
    """An Array of type ``aval`` holding what a NumPy computation returned."""
    array = Array(np.asarray(value, aval.dtype), aval.weak_type)
    array.aval = aval
    return array


eval_trace = EvalTrace()
trace_ctx.trace = eval_trace

# As with XLA, an overflow gives inf and an invalid operation nan, silently.  NumPy
# would warn; rather than wrap every operation in np.errstate (about a microsecond
# each), Python is told to ignore NumPy's floating-point warnings from minijax's
# own code, jit's generated code included (its module is minijax.compiled).
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"minijax\.")


def concrete_or_error(x, reason: str):
    """The concrete NumPy value of ``x``, or a ConcretizationTypeError that says why not."""
    if isinstance(x, Tracer):
        x = x.concrete_value(reason)
    return np.asarray(x)
