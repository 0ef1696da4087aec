"""Safe file I/O shared by every stage: files appear whole (temporary name, then rename)
or not at all, with the usual permissions; JSON is read with limits (nesting depth, finite
numbers only) and unreadable JSON is a UserError; names a file records stay inside its folder."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from itertools import accumulate
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

from cgphw.errors import UserError


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_args) -> Iterator[IO]:
    """Open a temporary file beside ``path`` (``open_args`` as for ``open``); when the block
    ends without error it gets the permissions the umask gives new files and is renamed onto
    ``path``, else it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_args) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a write that failed (disk full) names no file: name the one being written
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_replaceable(path: str | os.PathLike, force: bool | None = False,
                      ours: Callable[[Path], bool] | None = None, what: str = "file") -> Path:
    """Call before writing the file ``path``: something already there is replaced only when
    ``force`` (the command's --force; None: the command has none) or ``ours(path)`` says it is
    a ``what`` cgphw wrote; a folder never is. UserError otherwise, before anything is written."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the name of a file to write")
    if (path.exists() or path.is_symlink()) and not force and not (ours is not None and ours(path)):
        found = f" and is not a {what} cgphw wrote" if ours is not None else ""
        how = "pass --force to replace it" if force is not None else "move it away"
        raise UserError(f"{path} exists{found}: {how}, or choose another path")
    return path


def accepted_by(loader: Callable) -> Callable[[Path], bool]:
    """``ours`` for ``check_replaceable``: the file is one ``loader`` (which raises UserError
    for anything else) reads as its kind."""
    def ours(path: Path) -> bool:
        try:
            loader(path)
        except UserError:
            return False
        return True
    return ours


def write_json_atomic(path: str | os.PathLike, doc, indent: int | None = 1) -> Path:
    """Write JSON atomically, creating missing parent folders.
    ``indent=None`` writes compactly (much faster for large documents)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as fh:
        json.dump(doc, fh, indent=indent, allow_nan=False)  # NaN/Infinity are not JSON
        fh.write("\n")
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_file(path) as fh:
        fh.write(text)
    return Path(path)


MAX_JSON_DEPTH = 64  # cgphw's own files nest 4 deep; a task meta a little more
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def parse_json(text: str, source: str = "JSON text"):
    """Parse JSON refusing what Python's parser would take but cgphw must not: nesting deeper
    than MAX_JSON_DEPTH (it would exhaust the interpreter's stack) and NaN, Infinity or
    numbers that overflow to them. UserError names ``source``."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0) > MAX_JSON_DEPTH:
        raise UserError(f"{source} nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, _NotFinite) else exc.__class__.__name__
        raise UserError(f"{source} is not readable JSON ({reason})") from None


class _NotFinite(ValueError):
    pass


def _no_constant(name: str):
    raise _NotFinite(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text} is too large for a number")
    return value


def read_json(path: str | os.PathLike):
    """The JSON document in ``path`` (see ``parse_json``); UserError if it cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a readable JSON file ({exc.__class__.__name__})") from None
    return parse_json(text, f"{path}")


def member(directory: str | os.PathLike, name, what: str) -> Path:
    """``directory / name`` for a file name a cgphw file records: a plain name (no folder, no
    ``..``, not absolute) that does not lead outside ``directory`` through a link."""
    directory = Path(directory)
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\0" in name:
        raise UserError(f"{what} must be a plain file name inside {directory}, got {name!r}")
    path = directory / name
    if path.is_symlink() and not path.resolve().is_relative_to(directory.resolve()):
        raise UserError(f"{what} {name!r} in {directory} is a link to a file outside it")
    return path


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
