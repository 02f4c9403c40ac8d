"""minijax.numpy: a NumPy-like interface on top of minijax.lax.

This layer does what lax leaves out: it broadcasts shapes, promotes dtypes
(keeping JAX's weak types), accepts Python scalars, and turns integers into
floats where a function needs floats.

Many names here (sum, max, min, abs, any, all) are also Python builtins; inside
this module the builtins are always reached as ``builtins.any`` and so on.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from minijax import dtypes
from minijax.lax import lax
from minijax.core import Array, ArrayMethods, Tracer, get_aval, to_array
from minijax.tree_util import tree_leaves

pi = math.pi
e = math.e
inf = math.inf
nan = math.nan


class _ScalarType:
    """``jnp.float32`` and friends: a dtype, and a constructor of strong scalars."""

    def __init__(self, dtype: str):
        self.dtype = np.dtype(dtype)

    def __call__(self, x):
        return asarray(x, self.dtype)

    def __repr__(self):
        return f"<class 'minijax.numpy.{self.dtype.name}'>"


float32 = _ScalarType("float32")
int32 = _ScalarType("int32")
bool_ = _ScalarType("bool")


# ---------------------------------------------------------------------------
# Creating arrays.


def asarray(x, dtype=None):
    """An array from a Python scalar, nested lists, a NumPy array or an array."""
    if isinstance(x, (list, tuple)):
        if builtins.any(isinstance(v, Tracer) for v in tree_leaves(x)):
            return asarray(_strong(stack([asarray(v) for v in x])), dtype)  # a list is strong
        x = np.asarray([np.asarray(v) for v in x])  # a list is strongly typed
    if dtype is None:
        return x if isinstance(x, Tracer) else to_array(x)
    dtype = dtypes.canonicalize(getattr(dtype, "dtype", dtype))
    if isinstance(x, (Tracer, Array)):
        return lax.convert_element_type(x, dtype, weak_type=False)
    return Array(np.asarray(x, dtype))


array = asarray


def stack(arrays, axis: int = 0):
    """Join arrays of one shape along a new axis."""
    if not arrays:
        raise ValueError("Need at least one array to stack.")
    arrays = _promote(*[_as_operand(a) for a in arrays])
    shapes = [get_aval(a).shape for a in arrays]
    if len(set(shapes)) > 1:  # JAX's messages: no broadcasting here
        problem = ("Cannot stack arrays with different numbers of dimensions: got"
                   if len(set(map(len, shapes))) > 1 else
                   "All input arrays must have the same shape. Got")
        raise ValueError(f"{problem} {', '.join(map(str, shapes))}.")
    shape = shapes[0]
    axis = axis % (len(shape) + 1)
    expanded = (*shape[:axis], 1, *shape[axis:])
    kept = tuple(i for i in range(len(expanded)) if i != axis)
    return lax.concatenate([lax.broadcast_in_dim(a, expanded, kept) for a in arrays], axis)


def zeros(shape, dtype=float32) -> Array:
    return asarray(np.zeros(shape), dtype)


def ones(shape, dtype=float32) -> Array:
    return asarray(np.ones(shape), dtype)


def zeros_like(x):
    return lax.full_like(_as_operand(x), 0)


def ones_like(x):
    return lax.full_like(_as_operand(x), 1)


def arange(start, stop=None, step=1, dtype=None) -> Array:
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    return asarray(values, dtype or dtypes.canonicalize(values.dtype))


def linspace(start, stop, num: int = 50, endpoint: bool = True, dtype=float32) -> Array:
    return asarray(np.linspace(start, stop, num, endpoint=endpoint), dtype)


# ---------------------------------------------------------------------------
# Promotion and broadcasting.


def _as_operand(x):
    return x if isinstance(x, (Tracer, Array)) else to_array(x)


def _promote(*args):
    """Convert operands to their common dtype, as JAX's promotion rules say."""
    avals = [get_aval(a) for a in args]
    dtype, weak = dtypes.result_type(*[(a.dtype, a.weak_type) for a in avals])
    return [_convert(a, dtype, weak) for a in args]


def _convert(x, dtype, weak_type: bool):
    """Convert a traced operand with a primitive, and a concrete one right away, so no
    conversion is staged for it."""
    if isinstance(x, Tracer):
        return lax.convert_element_type(x, dtype, weak_type)
    if isinstance(x, Array) and x.dtype == dtype and x.weak_type == weak_type:
        return x
    return Array(np.asarray(x, dtype), weak_type)


def _broadcast(*args, name: str | None = None):
    """Broadcast operands to one shape; ``name`` is the binary operation's, for its error."""
    shapes = [get_aval(a).shape for a in args]
    if shapes.count(shapes[0]) == len(shapes):
        return list(args)  # one shape already: the common case, worth skipping NumPy's check
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        # As in JAX: operands of one rank reach lax, whose binary operation names itself
        # in a TypeError; other ranks, and other functions, fail in broadcast_shapes.
        if name is None or len({len(s) for s in shapes}) > 1:
            raise ValueError(f"Incompatible shapes for broadcasting: shapes={shapes}") from None
        raise TypeError(f"{name} got incompatible shapes for broadcasting: "
                        f"{', '.join(map(str, shapes))}.") from None
    return [broadcast_to(a, shape) for a in args]


def _promote_to_float(x):
    aval = get_aval(x)
    if aval.dtype.kind == "f":
        return _as_operand(x)
    # A weak integer (a Python int) gives a weak float; a boolean, even a weak one, a
    # strong float32, as in JAX.
    return _convert(x, dtypes.float32, aval.weak_type and aval.dtype.kind != "b")


def _binary_op(lax_op):
    def op(x, y):
        x_aval, y_aval = get_aval(x), get_aval(y)
        if x_aval is y_aval or x_aval == y_aval:
            return lax_op(x, y)  # one type and shape already: the common case, made quick
        return lax_op(*_broadcast(*_promote(x, y), name=lax_op.__name__))
    op.__name__ = lax_op.__name__
    return op


def _unary_op(lax_op, as_operand=_as_operand, name: str | None = None):
    def op(x):
        return lax_op(as_operand(x))
    op.__name__ = op.__qualname__ = name or lax_op.__name__
    return op


add = _binary_op(lax.add)
subtract = _binary_op(lax.sub)
multiply = _binary_op(lax.mul)
maximum = _binary_op(lax.max)
minimum = _binary_op(lax.min)
less = _binary_op(lax.lt)
less_equal = _binary_op(lax.le)
greater = _binary_op(lax.gt)
greater_equal = _binary_op(lax.ge)
equal = _binary_op(lax.eq)
not_equal = _binary_op(lax.ne)

sin = _unary_op(lax.sin, _promote_to_float)
cos = _unary_op(lax.cos, _promote_to_float)
tan = _unary_op(lax.tan, _promote_to_float)
tanh = _unary_op(lax.tanh, _promote_to_float)
exp = _unary_op(lax.exp, _promote_to_float)
log = _unary_op(lax.log, _promote_to_float)
log1p = _unary_op(lax.log1p, _promote_to_float)
expm1 = _unary_op(lax.expm1, _promote_to_float)
sqrt = _unary_op(lax.sqrt, _promote_to_float)

negative = _unary_op(lax.neg, name="negative")
abs = absolute = _unary_op(lax.abs)  # noqa: A001  (NumPy's name)
sign = _unary_op(lax.sign)
floor = _unary_op(lax.floor)
ceil = _unary_op(lax.ceil)
round = _unary_op(lax.round)  # noqa: A001  (JAX's name)


def divide(x, y):
    """True division: integers are divided as floats."""
    x, y = _promote(x, y)
    return lax.div(*_broadcast(_promote_to_float(x), _promote_to_float(y), name="div"))


true_divide = divide


def power(x, y):
    x, y = _bool_as_int32(x), _bool_as_int32(y)  # power is numeric: booleans count as 0, 1
    # A concrete integer exponent is unrolled into multiplications (integer_pow), as
    # in JAX: x keeps its type, so a weakly typed x stays weak.
    if not isinstance(y, Tracer) and get_aval(y).shape == () \
            and np.issubdtype(get_aval(y).dtype, np.integer):
        return lax.integer_pow(_as_operand(x), int(y))
    # As in JAX, a float is raised to integer powers without promoting the exponent,
    # so that the derivative at x = 0 of x ** 0 is 0.
    if dtypes.is_float(get_aval(x).dtype) and np.issubdtype(get_aval(y).dtype, np.integer):
        return lax.pow(*_broadcast(_as_operand(x), _as_operand(y), name="pow"))
    return lax.pow(*_broadcast(*_promote(x, y), name="pow"))


def _bool_as_int32(x):
    return _convert(x, dtypes.int32, False) if get_aval(x).dtype == dtypes.bool_ else x


def square(x):
    return lax.integer_pow(_as_operand(_bool_as_int32(x)), 2)  # numeric, as power


def where(condition, x, y):
    if get_aval(condition).dtype != dtypes.bool_:
        condition = not_equal(condition, 0)  # nonzero is true, as in NumPy
    condition, x, y = _broadcast(_as_operand(condition), *_promote(x, y))
    return lax.select_n(condition, y, x)


def clip(x, min=None, max=None):  # noqa: A002  (JAX's names)
    if min is not None:
        x = maximum(min, x)  # the bound first, as in JAX
    if max is not None:
        x = minimum(max, x)
    return x


# ---------------------------------------------------------------------------
# Reductions.


def _axes(x, axis) -> tuple[int, ...]:
    ndim = get_aval(x).ndim
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of bounds for array of dimension {ndim}")
    return tuple(a % ndim for a in axes)


def _strong(x):
    """Reductions give strongly typed results, as in JAX."""
    return _convert(x, get_aval(x).dtype, False)


def sum(x, axis=None):  # noqa: A001
    x = _as_operand(x)
    if get_aval(x).dtype == dtypes.bool_:
        x = asarray(x, int32)  # summing booleans counts them
    return lax.reduce_sum(_strong(x), _axes(x, axis))


def max(x, axis=None):  # noqa: A001
    x = _as_operand(x)
    return lax.reduce_max(_strong(x), _axes(x, axis))


def min(x, axis=None):  # noqa: A001
    x = _as_operand(x)
    return lax.reduce_min(_strong(x), _axes(x, axis))


amax, amin = max, min


def any(x, axis=None):  # noqa: A001
    return greater(max(asarray(x, bool_), axis), False)


def all(x, axis=None):  # noqa: A001
    return greater(min(asarray(x, bool_), axis), False)


def isnan(x):
    return not_equal(x, x)  # nan is the one value not equal to itself


def isfinite(x):
    x = _as_operand(x)
    if dtypes.is_float(get_aval(x).dtype):
        return lax.is_finite(x)
    return lax.full_like(x, True, dtypes.bool_)  # every integer is finite


def isinf(x):
    x = _as_operand(x)
    if dtypes.is_float(get_aval(x).dtype):
        # Against a strongly typed inf, as JAX compares: the result is strong too.
        return equal(abs(x), _convert(np.inf, get_aval(x).dtype, False))
    return lax.full_like(x, False, dtypes.bool_)


def mean(x, axis=None):
    x = _promote_to_float(x)
    count = math.prod(get_aval(x).shape[a] for a in _axes(x, axis))
    return divide(sum(x, axis), count)


# ---------------------------------------------------------------------------
# Shapes.


def ndim(a) -> int:
    """The number of dimensions of an array, a Python scalar or anything with ``ndim``."""
    return a.ndim if hasattr(a, "ndim") else np.ndim(a)


def broadcast_to(x, shape):
    x = _as_operand(x)
    shape = tuple(shape)
    aval = get_aval(x)
    if aval.ndim > len(shape) or builtins.any(
            d not in (1, s) for d, s in zip(aval.shape[::-1], shape[::-1])):
        raise ValueError(f"Incompatible types for broadcasting: input type="
                         f"{aval.str_short(short_dtypes=False)} and requested type="
                         f"{aval.update(shape=shape).str_short(short_dtypes=False)}")
    return lax.broadcast_in_dim(x, shape, tuple(range(len(shape) - aval.ndim, len(shape))))


def reshape(x, shape):
    x = _as_operand(x)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        shape = tuple(get_aval(x).size // known if d == -1 else d for d in shape)
    return lax.reshape(x, shape)


def transpose(x, axes=None):
    x = _as_operand(x)
    ndim = get_aval(x).ndim
    return lax.transpose(x, tuple(axes) if axes is not None else tuple(reversed(range(ndim))))


def dot(a, b):
    """Dot product of vectors, or matrix products of 1-D and 2-D arrays."""
    a, b = _promote(a, b)
    a_ndim, b_ndim = get_aval(a).ndim, get_aval(b).ndim
    if a_ndim == 0 or b_ndim == 0:
        return multiply(a, b)
    if builtins.max(a_ndim, b_ndim) > 2:
        raise TypeError("minijax.numpy.dot supports arrays of at most 2 dimensions")
    # b's first axis is its last but one when a matrix, its only one when a vector.
    return lax.dot_general(a, b, (((a_ndim - 1,), (0,)), ((), ())))


def matmul(a, b):
    """Matrix product; leading axes of equal size are batch axes."""
    a, b = _promote(a, b)
    a_ndim, b_ndim = get_aval(a).ndim, get_aval(b).ndim
    if builtins.max(a_ndim, b_ndim) <= 2:
        return dot(a, b)
    if a_ndim != b_ndim:
        raise TypeError("minijax.numpy.matmul needs batched operands of equal rank")
    batch = tuple(range(a_ndim - 2))
    return lax.dot_general(a, b, (((a_ndim - 1,), (b_ndim - 2,)), (batch, batch)))


# ---------------------------------------------------------------------------
# Basic indexing: integers, slices and Ellipsis, all static.


def getitem(x, index):
    x = _as_operand(x)
    index = tuple(map(_static_if_concrete, index if isinstance(index, tuple) else (index,)))
    traced = [i for i, item in enumerate(index) if isinstance(item, Tracer)]
    if traced:
        return _getitem_traced(x, index, traced)
    if builtins.any(isinstance(item, (Array, np.ndarray, list)) for item in index):
        raise TypeError("minijax supports only basic indexing (integers, slices, None "
                        "and ...) and traced integer scalars, not indexing with an "
                        "array or a list; use jnp.where or arithmetic instead")
    # None (np.newaxis) adds an axis of size 1: index without it, then reshape.
    result = _basic_getitem(x, tuple(item for item in index if item is not None))
    expanded = _expand_ellipsis(index, get_aval(x).ndim + builtins.sum(i is None for i in index))
    # Integers drop their axis; each slice keeps one, each None makes one.
    sizes = iter(get_aval(result).shape)
    return lax.reshape(result, tuple(1 if item is None else next(sizes) for item in expanded
                                     if not isinstance(item, (int, np.integer))))


def _static_if_concrete(item):
    """A concrete integer scalar (an Array or NumPy array) indexes as a Python int."""
    if isinstance(item, (Array, np.ndarray)) and get_aval(item).shape == () \
            and get_aval(item).dtype.kind in "iu":
        return int(item)
    return item


def _getitem_traced(x, index: tuple, traced: list):
    """Indexing where some items are traced integer scalars (a loop counter, a vmapped
    index): the other items index as usual, with each traced one's axis kept whole,
    then each traced index picks its entry along its axis.  JAX uses dynamic_slice;
    minijax picks with select and a sum, primitives every transformation handles."""
    for i in traced:
        aval = get_aval(index[i])
        if aval.shape != () or aval.dtype.kind not in "iu":
            raise TypeError(f"minijax indexes only with integer scalars when the index is "
                            f"traced, got {aval.str_short()}")
    if builtins.any(item is None or item is Ellipsis for item in index):
        raise TypeError("minijax does not combine a traced index with None or ...")
    result = getitem(x, tuple(builtins.slice(None) if i in traced else item
                              for i, item in enumerate(index)))
    # The axis each traced index applies to, among the axes the other items left.
    for i in reversed(traced):
        axis = builtins.sum(not isinstance(item, (int, np.integer)) for item in index[:i])
        result = _take(result, index[i], axis)
    return result


def _take(x, i, axis: int):
    """``x``'s entry ``i`` along ``axis``: the one where the position equals i (negative
    i counts from the end; out of bounds is clamped, as in JAX)."""
    size = get_aval(x).shape[axis]
    i = clip(where(i < 0, i + size, i), 0, size - 1)
    shape = [1] * get_aval(x).ndim
    shape[axis] = size
    hit = equal(reshape(arange(size), tuple(shape)), i)
    # Exact: every other term is 0 (False, for booleans, which are combined by any).
    combine = any if get_aval(x).dtype == dtypes.bool_ else sum
    return combine(where(hit, x, zeros_like(x)), axis=axis)


def _basic_getitem(x, index: tuple):
    shape = get_aval(x).shape
    index = _expand_ellipsis(index, len(shape))
    starts, limits, strides, squeezed, reversed_axes = [], [], [], [], []
    for axis, (size, item) in enumerate(zip(shape, index)):
        if isinstance(item, builtins.slice):
            start, stop, step = item.indices(size)
            if step < 0:
                # As JAX does: slice the same entries in increasing order, then reverse
                # (by JAX's arithmetic, so an empty slice starts where JAX's does).
                first = builtins.min(size, stop + 1 + builtins.abs(start - stop - 1) % -step)
                start, stop, step = first, builtins.max(first, start + 1), -step
                reversed_axes.append(axis)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            # Out-of-bounds indices are clamped, as JAX does (it cannot raise on device).
            item = builtins.min(builtins.max(item + size if item < 0 else item, 0), size - 1)
            start, stop, step = item, item + 1, 1
            squeezed.append(axis)
        else:
            raise TypeError(f"minijax supports only basic indexing (integers and slices), "
                            f"got {type(item).__name__}")
        starts.append(start)
        limits.append(builtins.max(start, stop))
        strides.append(step)
    whole = (starts, limits, set(strides)) == ([0] * len(shape), list(shape), {1})
    # The whole array: JAX stages no slice either.
    sliced = x if whole else lax.slice(x, starts, limits, None if set(strides) <= {1} else strides)
    if reversed_axes:
        sliced = lax.rev(sliced, reversed_axes)
    return lax.squeeze(sliced, squeezed)


def _expand_ellipsis(index: tuple, ndim: int) -> tuple:
    if builtins.sum(item is Ellipsis for item in index) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    # Compare by identity: `in` would call == on array items.  Without an ellipsis,
    # the missing axes are filled in at the end.
    at = next((i for i, item in enumerate(index) if item is Ellipsis), len(index))
    rest = index[:at] + index[at + 1:]
    if len(rest) > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, "
                         f"but {len(rest)} were indexed")
    return index[:at] + (builtins.slice(None),) * (ndim - len(rest)) + index[at + 1:]


# ---------------------------------------------------------------------------
# The operators and methods of arrays and tracers (JAX's numpy/array_methods.py).


def _reflected(fn):
    return lambda self, other: fn(other, self)


def _set_array_methods(cls) -> None:
    operators = {"add": add, "sub": subtract, "mul": multiply, "truediv": divide,
                 "pow": power, "matmul": matmul}
    for name, fn in operators.items():
        setattr(cls, f"__{name}__", fn)
        setattr(cls, f"__r{name}__", _reflected(fn))
    cls.__pos__ = lambda self: self
    cls.T = property(transpose)
    cls.reshape = lambda self, *shape: reshape(self, shape[0] if len(shape) == 1 else shape)
    cls.ravel = cls.flatten = lambda self: reshape(self, (-1,))
    cls.transpose = lambda self, *axes: transpose(
        self, (axes[0] if len(axes) == 1 else axes) or None)
    cls.clip = lambda self, min=None, max=None: clip(self, min, max)  # noqa: A002
    methods = {"__lt__": less, "__le__": less_equal, "__gt__": greater, "__ge__": greater_equal,
               "__eq__": equal, "__ne__": not_equal, "__neg__": negative, "__abs__": abs,
               "__getitem__": getitem, "sum": sum, "mean": mean, "max": max, "min": min,
               "any": any, "all": all, "dot": dot, "astype": asarray}
    for name, fn in methods.items():
        setattr(cls, name, fn)


_set_array_methods(ArrayMethods)
