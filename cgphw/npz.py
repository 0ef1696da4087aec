"""Reading ``.npz`` archives cgphw did not necessarily write: each array's dtype, element
count and byte size are checked from its ``.npy`` header before any of its data is read (a
small compressed file can expand to gigabytes), pickled objects are never loaded, and only
the arrays asked for are read."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from cgphw.errors import UserError

MAX_VALUES = 1 << 24  # elements per array: 16,777,216 (far above the study's largest task)
MAX_BYTES = 1 << 28  # bytes per array once read: 256 MiB
KIND_NAMES = {"b": "bool", "i": "signed integer", "u": "unsigned integer", "f": "floating point",
              "c": "complex", "U": "text"}
NUMBERS = "biufc"  # every kind of number (a reader that checks the exact dtype itself afterwards)


def npz_headers(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Name -> (shape, dtype) of each array in an .npz, read from the .npy headers only."""
    out = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
            out[info.filename[: -len(".npy")]] = (tuple(shape), dtype)
    return out


def read_npz(path: str | os.PathLike, wanted: Mapping[str, str] | str, what: str,
             max_values: int = MAX_VALUES, max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """The arrays of the .npz at ``path`` that ``wanted`` names (name -> the dtype kinds
    allowed, e.g. "i" or "iuf"; a plain string of kinds: every array, each of those kinds),
    after checking each one's header: kind, at most ``max_values`` elements and ``max_bytes``
    bytes. Names it lacks are absent from the result. UserError names ``what`` (e.g.
    "task file") and the file."""
    path = Path(path)
    try:
        headers = npz_headers(path)
    except Exception as exc:  # zip/npy errors come in many types
        raise UserError(f"{what} {path} is not a readable .npz archive ({exc})") from None
    kinds = {name: wanted for name in headers} if isinstance(wanted, str) else \
        {name: k for name, k in wanted.items() if name in headers}
    for name, allowed in kinds.items():
        shape, dtype = headers[name]
        if dtype.kind not in allowed or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            expected = "numeric" if allowed == NUMBERS else " or ".join(KIND_NAMES.get(k, k) for k in allowed)
            raise UserError(f"{what} {path} holds {name} of dtype {dtype.str}; it must hold {expected} values")
        values = int(np.prod(shape, dtype=object))
        if values > max_values:
            raise UserError(f"{what} {path} holds {name} of shape {' x '.join(f'{n:,}' for n in shape)}; "
                            f"at most {max_values:,} values per array are supported")
        if values * dtype.itemsize > max_bytes:
            raise UserError(f"{what} {path} holds {name} of {values * dtype.itemsize:,} bytes "
                            f"({dtype.str} x {values:,}); at most {max_bytes:,} bytes per array are supported")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in kinds}
    except Exception as exc:
        raise UserError(f"{what} {path} is not a readable .npz archive ({exc})") from None
