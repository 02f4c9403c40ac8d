"""The core: arrays, abstract values, primitives, and the traces that interpret them.

Every operation in minijax ends in ``primitive.bind(*args)``.  ``bind`` looks at
its arguments, finds the innermost transformation that is active (the *trace*
with the highest level among the arguments' tracers) and asks that trace to
process the primitive.  With no transformation active, the evaluation trace
simply runs the primitive's NumPy implementation.
"""
from __future__ import annotations

import importlib
import operator
import sys
from contextlib import contextmanager
from typing import Any, Callable, NamedTuple

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

    __slots__ = ("shape", "dtype", "weak_type")

    def __init__(self, shape: tuple[int, ...], dtype, weak_type: bool = False):
        # Avals are made for every operation: skip conversions that are not needed.
        self.shape = shape if type(shape) is tuple else tuple(shape)
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        self.weak_type = weak_type

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

    def update(self, shape=None, dtype=None, weak_type=None) -> ShapedArray:
        """The same aval with the given fields changed."""
        return ShapedArray(self.shape if shape is None else shape,
                           self.dtype if dtype is None else dtype,
                           self.weak_type if weak_type is None else weak_type)

    def str_short(self, short_dtypes: bool = True) -> str:
        """The short form used in jaxprs, like ``f32[3,4]`` (``float32[3,4]`` with
        ``short_dtypes=False``, as some of JAX's error messages write it)."""
        dtype = _SHORT_DTYPE_NAMES[self.dtype] if short_dtypes else self.dtype.name
        return f"{dtype}[{','.join(map(str, self.shape))}]"

    def __eq__(self, other):
        return (type(other) is ShapedArray and self.shape == other.shape
                and self.dtype == other.dtype and self.weak_type == other.weak_type)

    def __hash__(self):
        return hash((self.shape, self.dtype, self.weak_type))

    def __repr__(self):
        weak = ", weak_type=True" if self.weak_type else ""
        return f"ShapedArray({self.dtype.name}[{','.join(map(str, self.shape))}]{weak})"


_SHORT_DTYPE_NAMES = {dtypes.float32: "f32", dtypes.int32: "i32", dtypes.bool_: "bool"}


def get_aval(x) -> ShapedArray:
    """The abstract value of anything minijax accepts as an array."""
    if isinstance(x, (Tracer, Array)):
        return x.aval
    if dtypes.is_python_scalar(x):
        return ShapedArray((), dtypes.dtype_of_python_scalar(x), weak_type=True)
    if isinstance(x, (bool, np.ndarray, np.generic)):
        value = np.asarray(x)
        return ShapedArray(value.shape, dtypes.canonicalize(value.dtype))
    raise TypeError(f"Value {x!r} of type {type(x).__name__} is not a valid minijax type")


# ---------------------------------------------------------------------------
# Operators shared by concrete arrays and tracers.


def _numpy():
    """minijax.numpy is built on this module, so it is imported on first use."""
    return sys.modules.get("minijax.numpy") or importlib.import_module("minijax.numpy")


def _binary(name: str, reflected: bool = False):
    def method(self, other):
        fn = getattr(_numpy(), name)
        return fn(other, self) if reflected else fn(self, other)
    return method


class ArrayMethods:
    """Python operators and array methods, all written with minijax.numpy."""

    __slots__ = ()
    __array_priority__ = 100  # NumPy defers to our reflected operators

    __add__, __radd__ = _binary("add"), _binary("add", True)
    __sub__, __rsub__ = _binary("subtract"), _binary("subtract", True)
    __mul__, __rmul__ = _binary("multiply"), _binary("multiply", True)
    __truediv__, __rtruediv__ = _binary("divide"), _binary("divide", True)
    __pow__, __rpow__ = _binary("power"), _binary("power", True)
    __matmul__, __rmatmul__ = _binary("matmul"), _binary("matmul", True)
    __lt__, __le__ = _binary("less"), _binary("less_equal")
    __gt__, __ge__ = _binary("greater"), _binary("greater_equal")
    __eq__, __ne__ = _binary("equal"), _binary("not_equal")
    __hash__ = None  # arrays are mutable-looking values, as in NumPy and JAX

    def __neg__(self):
        return _numpy().negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _numpy().abs(self)

    def __getitem__(self, index):
        return _numpy().getitem(self, index)

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
    T = property(lambda self: _numpy().transpose(self))

    def sum(self, axis=None):
        return _numpy().sum(self, axis)

    def mean(self, axis=None):
        return _numpy().mean(self, axis)

    def max(self, axis=None):
        return _numpy().max(self, axis)

    def min(self, axis=None):
        return _numpy().min(self, axis)

    def reshape(self, *shape):
        return _numpy().reshape(self, shape[0] if len(shape) == 1 else shape)

    def astype(self, dtype):
        return _numpy().asarray(self, dtype)

    def ravel(self):
        return _numpy().reshape(self, (-1,))

    flatten = ravel

    def transpose(self, *axes):
        return _numpy().transpose(self, (axes[0] if len(axes) == 1 else axes) or None)

    def dot(self, other):
        return _numpy().dot(self, other)

    def clip(self, min=None, max=None):  # noqa: A002  (NumPy's names)
        return _numpy().clip(self, min, max)

    def any(self, axis=None):
        return _numpy().any(self, axis)

    def all(self, axis=None):
        return _numpy().all(self, axis)


# ---------------------------------------------------------------------------
# Concrete arrays.


class Array(ArrayMethods):
    """A concrete minijax array: a NumPy array plus JAX's weak-type flag."""

    __slots__ = ("_value", "weak_type", "_aval")

    def __init__(self, value: np.ndarray, weak_type: bool = False):
        self._value = value
        self.weak_type = weak_type
        self._aval = None

    @property
    def aval(self) -> ShapedArray:
        if self._aval is None:  # arrays never change, so their aval is made once
            self._aval = ShapedArray(self._value.shape, self._value.dtype, self.weak_type)
        return self._aval

    shape = property(lambda self: self._value.shape)
    dtype = property(lambda self: self._value.dtype)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._value, dtype)

    def __repr__(self):
        dtype = f"dtype={self.dtype.name}" + (", weak_type=True" if self.weak_type else "")
        if self._value.size == 0:
            body = f"[], shape={self._value.shape}"
        else:
            body = np.array2string(self._value, separator=", ", prefix="Array(", suffix=",")
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


def to_array(x) -> Array:
    """Wrap a Python scalar, NumPy value or Array as an Array of minijax's dtypes."""
    if isinstance(x, Array):
        return x
    aval = get_aval(x)
    return Array(np.asarray(x, aval.dtype), aval.weak_type)


# ---------------------------------------------------------------------------
# Primitives and bind.


class Primitive:
    """A named operation that every trace knows how to process.

    ``impl`` runs it on NumPy arrays; ``abstract_eval`` gives the shapes and dtypes
    of its results from those of its arguments.  Other modules register further
    rules (derivative, batching, transposition) in tables keyed by the primitive.
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
        trace = find_top_trace(args)
        tracers = [full_raise(trace, arg) for arg in args]
        outs = self.bind_with_trace(trace, tracers, params)
        if self.multiple_results:
            return [full_lower(out) for out in outs]
        return full_lower(outs)

    def bind_with_trace(self, trace: Trace, tracers, params):
        """Hand the primitive to ``trace``.  Primitives that carry Python functions
        instead of plain operands (custom rules) override this to call the
        trace's dedicated method."""
        return trace.process_primitive(self, tracers, params)


# ---------------------------------------------------------------------------
# Traces and tracers.


class MainTrace:
    """One active transformation: its level on the stack and its trace type.

    ``global_data`` is whatever the transformation needs to share among its
    tracers (the jaxpr being built, the vmap axis size...).
    """

    def __init__(self, level: int, trace_type: type, global_data: Any = None):
        self.level = level
        self.trace_type = trace_type
        self.global_data = global_data
        # Why its tracers may not be used right now (None: they may).
        self.inactive_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.inactive_reason is None

    def __repr__(self):
        return f"MainTrace({self.level}, {self.trace_type.__name__})"


class Trace:
    """How one transformation interprets primitives.

    ``pure`` and ``lift`` turn a value from outside the transformation (a
    constant, or a tracer of an outer transformation) into one of its tracers;
    ``process_primitive`` applies a primitive to its tracers.
    """

    def __init__(self, main: MainTrace):
        self.main = main

    def pure(self, val):
        raise NotImplementedError(type(self).__name__)

    def lift(self, val):
        raise NotImplementedError(type(self).__name__)

    def process_primitive(self, primitive: Primitive, tracers, params):
        raise NotImplementedError(type(self).__name__)


class Tracer(ArrayMethods):
    """A value that is being traced by the trace ``_trace``.

    Subclasses define ``aval``.  A tracer knows a concrete value only when its
    transformation keeps one (forward mode does, staging for jit does not); that
    is what decides whether Python control flow on it can work.
    """

    __slots__ = ("_trace",)

    def full_lower(self):
        return self

    def concrete_value(self, reason: str):
        """The concrete value behind this tracer, for Python code that needs one."""
        raise ConcretizationTypeError(_abstract_value_message(self, reason))

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

    def __repr__(self):
        return f"Traced<{self.aval.str_short()}>with<{type(self._trace).__name__}>"


_WHY_NOT_CONCRETE = (
    "This value is traced: while a transformation such as jit, vmap or make_jaxpr "
    "traces a function, its value is not known yet, so Python cannot branch on it "
    "or convert it. Use minijax.numpy.where or minijax.lax.cond for choices that "
    "depend on values, or compute the value outside the transformed function.")


def _abstract_value_message(tracer: Tracer, reason: str) -> str:
    return (f"Abstract tracer value encountered where concrete value is expected: "
            f"traced array with shape {tracer.aval.str_short()}\n"
            f"The problem arose with the `{reason}` function.\n{_WHY_NOT_CONCRETE}")


class EvalTrace(Trace):
    """The bottom of the stack: no transformation, primitives just run."""

    def pure(self, val):
        return val

    lift = pure

    def process_primitive(self, primitive, values, params):
        arrays = [to_array(v) for v in values]
        out_avals = primitive.abstract_eval(*[a.aval for a in arrays], **params)
        with np.errstate(all="ignore"):  # overflow gives inf, as in JAX, without warnings
            outs = primitive.impl(*[a._value for a in arrays], **params)
        if primitive.multiple_results:
            return [_as_array(o, aval) for o, aval in zip(outs, out_avals)]
        return _as_array(outs, out_avals)


def _as_array(value, aval: ShapedArray) -> Array:
    array = Array(np.asarray(value, aval.dtype), aval.weak_type)
    array._aval = aval
    return array


# The stack of active transformations; the evaluation trace is always at the bottom.
trace_stack: list[MainTrace] = [MainTrace(0, EvalTrace)]
# The innermost staging transformation (jit, make_jaxpr): it sees every
# primitive, even one applied to constants only, so constants are staged too.
dynamic_trace: MainTrace | None = None


@contextmanager
def new_main(trace_type: type, global_data: Any = None):
    main = MainTrace(len(trace_stack), trace_type, global_data)
    trace_stack.append(main)
    try:
        yield main
    finally:
        trace_stack.pop()
        main.inactive_reason = "after the transformation that created it had finished"


@contextmanager
def new_dynamic(main: MainTrace):
    global dynamic_trace
    previous, dynamic_trace = dynamic_trace, main
    try:
        yield
    finally:
        dynamic_trace = previous


@contextmanager
def suspended(mains: list[MainTrace], reason: str):
    """Run code during which the tracers of ``mains`` may not be used."""
    previous = [m.inactive_reason for m in mains]
    for m in mains:
        m.inactive_reason = reason
    try:
        yield
    finally:
        for m, r in zip(mains, previous):
            m.inactive_reason = r


def find_top_trace(args) -> Trace:
    """The trace of the innermost transformation among ``args``' tracers."""
    top = trace_stack[0]
    for arg in args:
        if isinstance(arg, Tracer):
            main = arg._trace.main
            if not main.active:
                raise UnexpectedTracerError(_leak_message(arg))
            if main.level > top.level:
                top = main
    if dynamic_trace is not None and dynamic_trace.level > top.level:
        top = dynamic_trace
    return top.trace_type(top)


def full_raise(trace: Trace, val):
    """Make ``val`` a tracer of ``trace``, lifting it from an outer level."""
    if not isinstance(val, Tracer):
        return trace.pure(val)
    main = val._trace.main
    if main is trace.main:
        return val
    if main.active and main.level < trace.main.level:
        return trace.lift(val)
    raise UnexpectedTracerError(_leak_message(val))


def full_lower(val):
    return val.full_lower() if isinstance(val, Tracer) else val


def _leak_message(tracer: Tracer) -> str:
    main = tracer._trace.main
    return (
        f"Encountered an unexpected tracer: a value of type {tracer.aval.str_short()} "
        f"traced by {type(tracer._trace).__name__} was used {main.inactive_reason}. "
        f"A transformed function must return every value it computes and take every "
        f"value it depends on as an argument: a value saved in a global, a list or an "
        f"object outside the function, or closed over by a function with a custom "
        f"derivative rule, escapes its transformation. Return it, or pass it in as an "
        f"argument.")


def concrete_or_error(x, reason: str):
    """The concrete NumPy value of ``x``, or a ConcretizationTypeError that says why not."""
    if isinstance(x, Tracer):
        x = x.concrete_value(reason)
    return np.asarray(x)
