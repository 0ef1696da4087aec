"""Directories cgphw writes (run directories, export directories): a marker says cgphw owns
the directory and lists the files it wrote there; a lock keeps a second writer out.

Rules every writer follows (``claim``): a directory is written only when it is new, empty,
or marked by cgphw as the same kind; an existing one is replaced only when the caller allows
it (``--force`` for runs; always for exports); only the files the marker lists are ever
removed or overwritten, and a file cgphw did not write that has the name of one it is about
to write stops the claim. The lock (``flock`` on ``.cgphw.lock``) is released by the kernel
when the process ends, however it ends, so it never goes stale.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from cgphw.errors import UserError
from cgphw.files import read_json, write_json_atomic

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; documented
    fcntl = None  # type: ignore[assignment]

MARKER = ".cgphw"
LOCK = ".cgphw.lock"
FORMAT = "cgphw-dir/1"
KINDS = ("run", "export")


@dataclass(frozen=True)
class Marker:
    kind: str  # "run" or "export"
    files: tuple[str, ...]  # what cgphw wrote here (and may therefore replace or remove)

    def to_json(self) -> dict:
        return {"format": FORMAT, "kind": self.kind, "files": sorted(set(self.files))}


def read_marker(directory: str | os.PathLike) -> Marker | None:
    """The directory's marker; None when it has none; UserError when it is malformed."""
    path = Path(directory) / MARKER
    if not path.is_file():
        return None
    doc = read_json(path)
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("kind") not in KINDS \
            or not isinstance(files, list) or not all(_plain(f) for f in files):
        raise UserError(f"{path} is not a valid cgphw directory marker (format {FORMAT!r}, kind, files); "
                        "remove the directory or restore the marker")
    return Marker(doc["kind"], tuple(files))


def write_marker(directory: str | os.PathLike, marker: Marker) -> None:
    write_json_atomic(Path(directory) / MARKER, marker.to_json())


def _plain(name) -> bool:
    return isinstance(name, str) and bool(name) and name not in (".", "..", MARKER, LOCK) \
        and "/" not in name and "\\" not in name and "\0" not in name


class DirLock:
    """An exclusive lock on a directory for one writer (advisory: every cgphw writer takes it)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.fd: int | None = None

    def acquire(self) -> "DirLock":
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(f"another cgphw process is writing {self.directory}; wait until it ends "
                                "or choose another directory") from None
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass
class Claim:
    """A directory taken for writing: held lock, and what was there before."""
    directory: Path
    lock: DirLock
    previous: Marker | None  # the marker found, None for a new or empty directory
    created: bool  # cgphw made the directory
    written: set[str] = field(default_factory=set)

    def release(self) -> None:
        self.lock.release()

    def abandon(self) -> None:
        """Undo a start that failed: remove the files this claim wrote (and the directory if
        this claim made it and nothing else is left), then unlock."""
        remove_owned(self.directory, self.written | (set() if self.previous else {MARKER}))
        self.release()
        if self.created:
            (self.directory / LOCK).unlink(missing_ok=True)
            try:
                self.directory.rmdir()
            except OSError:
                pass


def claim(directory: str | os.PathLike, kind: str, new_files: Iterable[str], replace: bool,
          refuse_replace: str = "", legacy: Callable[[Path], Marker | None] | None = None) -> Claim:
    """Take ``directory`` for writing ``new_files`` as a ``kind`` directory; see the module
    rules. ``replace`` allows replacing an earlier marked one; when it is False,
    ``refuse_replace`` is the sentence that says why not. ``legacy`` recognises a directory
    an older cgphw wrote before markers existed. Returns the claim, lock held."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} exists and is not a directory")
    _check_owner(directory, kind, new_files, replace, refuse_replace, legacy)  # before creating anything
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    lock = DirLock(directory).acquire()
    try:
        previous = _check_owner(directory, kind, new_files, replace, refuse_replace, legacy)  # now exclusive
    except BaseException:
        lock.release()
        raise
    return Claim(directory, lock, previous, created)


def _check_owner(directory: Path, kind: str, new_files: Iterable[str], replace: bool,
                 refuse_replace: str, legacy) -> Marker | None:
    if not directory.is_dir():
        return None
    entries = set(os.listdir(directory)) - {LOCK}
    marker = read_marker(directory) or (legacy(directory) if legacy else None)
    if not entries:
        return None
    if marker is None:
        shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise UserError(f"{directory} is not empty and was not written by cgphw ({shown}); "
                        "choose a new or empty directory")
    if marker.kind != kind:
        raise UserError(f"{directory} holds a cgphw {marker.kind} directory, not a {kind} directory; "
                        "choose another directory")
    if not replace:
        raise UserError(refuse_replace or f"{directory} already holds a cgphw {kind}")
    foreign = sorted(set(new_files) & (entries - set(marker.files) - {MARKER}))
    if foreign:
        raise UserError(f"{directory} holds {', '.join(foreign)}, which cgphw did not write but would now "
                        "overwrite; move it away or choose another directory")
    return marker


def remove_owned(directory: str | os.PathLike, names: Iterable[str]) -> None:
    """Remove these files (names cgphw wrote) and any temporary files they left behind."""
    directory = Path(directory)
    for name in set(names):
        (directory / name).unlink(missing_ok=True)
        leftover = re.compile(rf"^\.{re.escape(name)}\.[^/]*\.tmp$")  # files.atomic_file's temp names
        for entry in os.listdir(directory):
            if leftover.match(entry):
                (directory / entry).unlink(missing_ok=True)
