"""One input tensor from the wire to a numpy array, refusing what cannot be represented. Pure code.

Every problem raises ``BadRequest`` naming the input and the value; nothing else escapes, so a
hostile tensor is a 4xx counted as *rejected*, never a 500 and never a model failure:

* shapes are lists of integers (booleans are not integers here), at most ``MAX_NDIM`` long,
  each dimension at most ``MAX_DIM``, and even a zero-size shape must be one numpy can hold;
* values must fit the declared datatype: an ``INT8`` 1000 or a ``UINT8`` -1 is refused rather
  than wrapped, a ``BOOL`` takes only true/false or 0/1, a float that would overflow ``FP16``
  or ``FP32`` to infinity is refused (NaN and infinity themselves are refused by validation);
* binary tensors (``binary_data_size``) must be a whole number of items;
* ``BYTES`` (string) tensors are not supported, whatever the signature says.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rayrollout.errors import BadRequest
from rayrollout.runtime.base import OIP_TO_NUMPY

MAX_NDIM = 32  # numpy allows 64; no model input needs more than a handful
MAX_DIM = 2**31 - 1
MAX_ELEMENTS_OF_NONZERO_DIMS = 2**48  # numpy must be able to hold even a zero-size shape


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: client values are echoed, never in bulk."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def dtype_of(name: str, datatype: Any) -> np.dtype:
    dtype = OIP_TO_NUMPY.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise BadRequest(f"inputs[{name!r}].datatype={short(datatype)} is not supported; "
                         f"supported: {', '.join(OIP_TO_NUMPY)}")
    return dtype


def check_shape(name: str, shape: Any) -> list[int]:
    """``shape`` as a list of dimensions, or ``BadRequest`` naming it."""
    if not (isinstance(shape, list)
            and all(type(d) is int and d >= 0 for d in shape)):
        raise BadRequest(f"inputs[{name!r}].shape={short(shape)} must be a list of integers >= 0")
    if (len(shape) > MAX_NDIM or any(d > MAX_DIM for d in shape)
            or math.prod(d or 1 for d in shape) > MAX_ELEMENTS_OF_NONZERO_DIMS):
        raise BadRequest(f"inputs[{name!r}].shape={short(shape)} is too large (at most "
                         f"{MAX_NDIM} dimensions of at most {MAX_DIM})")
    return shape


def reshape(name: str, flat: np.ndarray, shape: list[int]) -> np.ndarray:
    need = math.prod(shape)
    if flat.size != need:
        raise BadRequest(f"inputs[{name!r}] has {flat.size} values but shape {short(shape)} "
                         f"needs {need}")
    return flat.reshape(shape)


def from_binary(name: str, buf: memoryview, datatype: str, shape: list[int]) -> np.ndarray:
    """A tensor of Triton's binary extension: raw little-endian items, row-major."""
    dtype = dtype_of(name, datatype)
    if len(buf) % dtype.itemsize:
        raise BadRequest(f"inputs[{name!r}].binary_data_size={len(buf)} is not a multiple of "
                         f"{dtype.itemsize} (the size of one {datatype} item)")
    if dtype.kind == "b":
        raw = np.frombuffer(buf, dtype=np.uint8)
        if raw.size and raw.max() > 1:
            raise BadRequest(f"inputs[{name!r}] holds a BOOL byte other than 0 or 1")
        return reshape(name, raw.view(np.bool_), shape)
    return reshape(name, np.frombuffer(buf, dtype=dtype), shape)


def to_array(name: str, data: Any, datatype: Any) -> np.ndarray:
    """JSON ``data`` (nested or flat lists of numbers) as an array of ``datatype``."""
    dtype = dtype_of(name, datatype)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise BadRequest(f"inputs[{name!r}] is ragged, nested too deeply or not numeric"
                         ) from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise BadRequest(f"inputs[{name!r}] must hold numbers, got {arr.dtype.kind!r} values")
    _check_range(name, arr, dtype, datatype)
    return arr.astype(dtype, copy=False)


def _check_range(name: str, arr: np.ndarray, dtype: np.dtype, datatype: str) -> None:
    """Refuse values that ``astype(dtype)`` would wrap, truncate or overflow."""
    if not arr.size or arr.dtype.kind == "b":
        return
    src_float = arr.dtype.kind == "f"
    if dtype.kind == "f":
        if src_float:
            if dtype.itemsize >= arr.dtype.itemsize:
                return  # a float fits a float at least as wide
            big = float(np.abs(arr).max())
            if not math.isfinite(big):  # NaN and Inf are named by validation: look past them
                finite = arr[np.isfinite(arr)]
                big = float(np.abs(finite).max()) if finite.size else 0.0
        else:
            big = max(abs(int(arr.min())), abs(int(arr.max())))
        if big > float(np.finfo(dtype).max):
            raise BadRequest(f"inputs[{name!r}] holds {big:g}, out of range for {datatype}")
        return
    if dtype.kind == "b":
        if not np.all((arr == 0) | (arr == 1)):
            raise BadRequest(f"inputs[{name!r}] is out of range for BOOL: it takes only "
                             "true/false or 0/1")
        return
    if src_float and (not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr))):
        raise BadRequest(f"inputs[{name!r}] must hold integers for {datatype}")
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    if src_float:  # lo and hi + 1 are powers of two (or 0): exact as floats
        bad = bool(np.any(arr < float(lo)) or np.any(arr >= float(hi + 1)))
    else:
        bad = int(arr.min()) < lo or int(arr.max()) > hi
    if bad:
        raise BadRequest(f"inputs[{name!r}] is out of range for {datatype}: values must be in "
                         f"[{lo}, {hi}]")
