"""Dtypes and weak types: how minijax decides the dtype of every result.

minijax follows JAX without 64-bit mode: floating point values are float32 and
integers int32.  A Python scalar such as ``2.0`` is *weakly typed*: it takes the
dtype of the array it meets instead of forcing its own, so ``x * 2.0`` keeps
``x``'s dtype.  A result that came only from weak inputs stays weak.
"""
from __future__ import annotations

import functools

import numpy as np

float32 = np.dtype("float32")
int32 = np.dtype("int32")
bool_ = np.dtype("bool")
# The type of the tangents of integers and booleans, which can only be zero: JAX's
# float0, a NumPy dtype of zero bytes, whose arrays hold no data and allow no arithmetic.
float0 = np.dtype([("float0", "V")])

# Every dtype minijax computes with; wider NumPy dtypes are narrowed to these.
_CANONICAL = {"f": float32, "i": int32, "u": int32, "b": bool_, "V": float0}
_KIND_RANK = {"b": 0, "i": 1, "f": 2}


def canonicalize(dtype) -> np.dtype:
    """Narrow a NumPy dtype to the one minijax uses (float64 -> float32, ...)."""
    dtype = np.dtype(dtype)
    try:
        return _CANONICAL[dtype.kind]
    except KeyError:
        raise TypeError(f"minijax does not support arrays of dtype {dtype}") from None


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def tangent_dtype(dtype) -> np.dtype:
    """The dtype of tangents and cotangents of values of ``dtype``."""
    return np.dtype(dtype) if is_float(dtype) else float0


# Every binary operation asks this: remembering the answer for each combination
# of dtypes (there are few) is much cheaper than asking NumPy again.
@functools.lru_cache(maxsize=None)
def result_type(*typed: tuple[np.dtype, bool]) -> tuple[np.dtype, bool]:
    """The (dtype, weak_type) of combining values given as (dtype, weak_type).

    Strong dtypes promote as in NumPy.  A weak value only matters when it is of
    a higher kind than every strong one: ``int32 array * 2.0`` is float32, and
    weak, because its float-ness came from the Python scalar.
    """
    strong = [d for d, weak in typed if not weak]
    weak = [d for d, weak in typed if weak]
    if not weak:
        return canonicalize(np.result_type(*strong)), False
    weak_kind = max((np.dtype(d).kind for d in weak), key=_KIND_RANK.__getitem__)
    if not strong:
        return _CANONICAL[weak_kind], True
    dtype = canonicalize(np.result_type(*strong))
    if _KIND_RANK[weak_kind] > _KIND_RANK[dtype.kind]:
        return _CANONICAL[weak_kind], True
    return dtype, False
