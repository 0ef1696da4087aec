"""Safe file I/O shared by every stage: files appear whole (temporary name, then rename)
or not at all, with the usual permissions, and unreadable JSON is a UserError."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

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
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, doc, indent: int | None = 1) -> Path:
    """Write JSON atomically, creating missing parent folders.
    ``indent=None`` writes compactly (much faster for large documents)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as fh:
        json.dump(doc, fh, indent=indent)
        fh.write("\n")
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_file(path) as fh:
        fh.write(text)
    return Path(path)


def read_json(path: str | os.PathLike):
    """The JSON document in ``path``; UserError if it cannot be read or parsed."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not a readable JSON file ({exc.__class__.__name__})") from None


def sha256_file(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
