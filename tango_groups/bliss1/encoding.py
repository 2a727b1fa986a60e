"""Value encodings of the Bliss 1.x data nodes, and the only place that pickles or unpickles.

Three encodings meet in Redis (see ``tango_groups.bliss1.node`` for where each is used):

* struct hashes hold ``str(value)`` as UTF-8 text, read back with Bliss's auto-coercion
  (``"True"`` -> True, ``"0001"`` -> 1, ``"1.5"`` -> 1.5, anything else stays text);
* ``_info`` hashes and the pickled fields of streams hold Python pickles (protocol 4);
* stream fields such as ``__NPOINTS__`` hold ASCII text.

Pickles we *write* name numpy's reconstruction functions under ``numpy.core`` (numpy 1.x paths), so
that readers still on numpy 1 (Bliss 1.11 environments) load them; numpy 2 loads both spellings.

Pickles we *read* come from a shared Redis: ``loads`` goes through an allow-list unpickler that
only resolves builtin value types, numpy arrays / scalars / dtypes and ``datetime`` types. Anything
else (``os.system``, ``builtins.eval``, a custom class) raises ``UnsafePickleError`` before any code
runs.
"""

from __future__ import annotations

import datetime
import functools
import io
import pickle
from typing import Any

import numpy

__all__ = ["UnsafePickleError", "coerce_struct_value", "dumps", "loads"]

PROTOCOL = 4


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle from Redis references something outside the allow-list; nothing was executed."""


class _RawData:
    """The bytes of a C-contiguous array, to be written into a pickle as they are."""

    def __init__(self, array: numpy.ndarray) -> None:
        self.view = memoryview(array.reshape(-1)).cast("B")


class _Numpy1Pickler(pickle._Pickler):  # the pure-Python pickler lets us rename globals
    """Pickler writing ``numpy._core.*`` globals as ``numpy.core.*`` (loadable by numpy 1 and 2).

    A C-contiguous array is reduced as numpy reduces it (``_reconstruct`` then ``__setstate__``
    with the raw bytes), but its bytes go to the output as a view of the array, outside any
    frame: the only copy of a large array is the final join (numpy's own reduce copies it once
    more, into a bytes object)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None) or pickle.whichmodule(obj, name)
        if not module.startswith("numpy._core"):
            return super().save_global(obj, name)
        qualname = name or obj.__qualname__
        self.save(module.replace("numpy._core", "numpy.core", 1))
        self.save(qualname)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

    def reducer_override(self, obj: Any) -> Any:
        if (type(obj) is numpy.ndarray and obj.flags.c_contiguous
                and obj.dtype.kind not in "OV" and not obj.dtype.hasobject):
            return (_NUMPY_CORE["_reconstruct"], (numpy.ndarray, (0,), b"b"),
                    (1, obj.shape, obj.dtype, False, _RawData(obj)))
        return NotImplemented

    def save_raw(self, obj: _RawData) -> None:
        size = obj.view.nbytes
        header = (pickle.BINBYTES + size.to_bytes(4, "little") if size <= 0xFFFFFFFF
                  else pickle.BINBYTES8 + size.to_bytes(8, "little"))
        self.framer.write_large_bytes(header, obj.view)

    dispatch[_RawData] = save_raw


def _needs_numpy1_paths(value: Any) -> bool:
    """True if pickling ``value`` could reference ``numpy._core`` (arrays, scalars, containers)."""
    if isinstance(value, (numpy.ndarray, numpy.generic, numpy.dtype)):
        return True
    if isinstance(value, dict):
        return any(_needs_numpy1_paths(k) or _needs_numpy1_paths(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_needs_numpy1_paths(v) for v in value)
    return False


def dumps(value: Any) -> bytes:
    """Pickle ``value`` as Bliss does (protocol 4), with numpy-1-compatible module paths."""
    if not _needs_numpy1_paths(value):
        return pickle.dumps(value, protocol=PROTOCOL)  # C pickler: same bytes, faster
    if (isinstance(value, (numpy.generic, numpy.ndarray)) and value.dtype.kind not in "OV"
            and value.nbytes <= _TEMPLATE_MAX_BYTES
            and (isinstance(value, numpy.generic) or value.flags.c_contiguous)):
        template = _template(type(value), value.dtype, value.shape)
        if template is not None:  # a point: the same pickle as the slow path, 20x faster
            prefix, suffix = template
            return prefix + value.tobytes() + suffix
    return _slow_dumps(value)


def _slow_dumps(value: Any) -> bytes:
    chunks = _Chunks()
    _Numpy1Pickler(chunks, protocol=PROTOCOL).dump(value)
    return b"".join(chunks)


_TEMPLATE_MAX_BYTES = 65536  # above, the copy dominates and the pickler writes views


@functools.lru_cache(maxsize=512)
def _template(kind: type, dtype: numpy.dtype, shape: tuple[int, ...]) -> tuple[bytes, bytes] | None:
    """(prefix, suffix) around the raw bytes in the pickle of a numpy value of this type, dtype
    and shape, found by pickling all-0x00 and all-0xff data; None if they differ elsewhere."""
    size = dtype.itemsize * int(numpy.prod(shape))
    if size == 0:
        return None
    pickles = []
    for fill in (b"\x00", b"\xff"):
        array = numpy.frombuffer(fill * size, dtype=dtype).reshape(shape)
        pickles.append(_slow_dumps(array[()] if kind is not numpy.ndarray else array.copy()))
    zeros, ones = pickles
    if len(zeros) != len(ones):
        return None
    start = next(i for i, (a, b) in enumerate(zip(zeros, ones)) if a != b)
    if zeros[start + size:] != ones[start + size:] or zeros[start:start + size] != b"\x00" * size:
        return None
    return zeros[:start], zeros[start + size:]


class _Chunks(list):
    """A write-only file keeping the pickler's writes: one copy at the end, where a BytesIO
    re-grows its buffer (a large array's bytes cost three times more to pickle through it)."""

    write = list.append


_BUILTIN_TYPES = {
    t.__name__: t
    for t in (bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset,
              slice, range, type(None))
}
_DATETIME_TYPES = {
    t.__name__: t
    for t in (
        datetime.datetime, datetime.date, datetime.time, datetime.timedelta, datetime.timezone
    )
}
_NUMPY_SCALAR_TYPES = {
    name: obj
    for name, obj in vars(numpy).items()
    if isinstance(obj, type) and issubclass(obj, numpy.generic)
}
_NUMPY_CORE = {
    "_reconstruct": numpy.ndarray.__reduce__(numpy.empty(0))[0],
    "scalar": numpy.float64(0).__reduce__()[0],
    "ndarray": numpy.ndarray,
    "dtype": numpy.dtype,
}
_NUMPY_FROMBUFFER = numpy.empty(0).__reduce_ex__(5)[0]  # protocol-5 array pickles

_ALLOWED: dict[str, dict[str, Any]] = {
    "builtins": _BUILTIN_TYPES,
    "__builtin__": _BUILTIN_TYPES,  # protocol-2 pickles made by Python 2
    "datetime": _DATETIME_TYPES,
    "numpy": {**_NUMPY_SCALAR_TYPES, "ndarray": numpy.ndarray, "dtype": numpy.dtype},
    "numpy.core.multiarray": _NUMPY_CORE,
    "numpy._core.multiarray": _NUMPY_CORE,
    "numpy.core.numeric": {"_frombuffer": _NUMPY_FROMBUFFER},
    "numpy._core.numeric": {"_frombuffer": _NUMPY_FROMBUFFER},
    "numpy.dtypes": {  # numpy 2 pickles dtype *classes* (e.g. a dtype given as np.dtype('f8'))
        name: obj for name, obj in vars(getattr(numpy, "dtypes", object)).items()
        if isinstance(obj, type) and issubclass(obj, numpy.dtype)
    },
}


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[module][name]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle {module}.{name} from Redis: only builtin values, numpy "
                "arrays/scalars/dtypes and datetime objects are allowed"
            ) from None


def loads(data: bytes) -> Any:
    """Unpickle bytes read from Redis through the allow-list (raises ``UnsafePickleError``)."""
    return _AllowListUnpickler(io.BytesIO(data)).load()


def coerce_struct_value(raw: bytes | str) -> bool | int | float | str:
    """Decode a struct-hash value the way Bliss reads it back (bool, then int, then float, then
    str)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text
