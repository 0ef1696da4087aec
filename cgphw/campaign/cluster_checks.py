"""Checks of the cluster settings before anything starts. The PBS/SLURM settings are copied
into a job script that a shell runs on the cluster's nodes: a newline in a wall time or a
directive would be a command line of its own there, so every value must have the plain
shape its directive expects. A scheduler address must name a host and a port, and the
server there must answer like a Dask scheduler before a client is handed to it."""
from __future__ import annotations

import re
import socket
import struct
from pathlib import Path
from typing import Callable

from cgphw.errors import UserError

BATCH_KINDS = ("pbs", "slurm")
KINDS_TEXT = "local, pbs, slurm or a scheduler address such as tcp://host:8786"
MAX_TEXT = 200  # characters of one value (names, times, directives)
MAX_DIRECTIVES = 64
MAX_JOBS = 1000  # workers: jobs (pbs/slurm) or local processes
MAX_CORES = 1024  # per job
MAX_MEMORY = 1 << 50  # bytes per job (1 PiB)
PROBE_SECONDS = 10.0
MAX_HANDSHAKE = 1 << 16  # bytes: a scheduler's first message is a few dozen

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]*")  # a queue (queue@server), partition or account
_INTERFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}")  # Linux: at most 15 characters
_WALLTIME = re.compile(r"(\d{1,3}-)?\d{1,4}(:\d{1,2}){0,2}")  # SS, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]
_MEMORY = re.compile(r"\d{1,12}(\.\d{1,6})? ?([KMGTP]i?B?|B)?", re.IGNORECASE)
# one option of sbatch/qsub, as dask-jobqueue's job_extra_directives take it (it adds the
# "#SBATCH "/"#PBS " prefix): --exclusive, --qos=high, -m abe, -l select=1:ncpus=8
_DIRECTIVE = re.compile(r"--?[A-Za-z][A-Za-z0-9_-]*([ =][A-Za-z0-9_.,:=@/+%-]+)?")
_ADDRESS = re.compile(r"(?:tcp://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})")

_SHAPES = {
    "queue": (_NAME, "a queue or partition name (letters, digits, _ . @ + -), e.g. qcpu"),
    "account": (_NAME, "an account (project) name (letters, digits, _ . @ + -), e.g. OPEN-1"),
    "interface": (_INTERFACE, "a network interface name such as ib0, eth0 or lo"),
    "walltime": (_WALLTIME, "a wall time such as 04:00:00, 90:00 or 2-00:00:00"),
    "memory": (_MEMORY, "an amount of memory such as 16GB or 500MB"),
}
_INTS = {"workers": MAX_JOBS, "cores": MAX_CORES, "processes": MAX_CORES}


def check_values(values: dict, name: Callable[[str], str]) -> None:
    """Every setting in ``values`` has its expected type and shape; else one UserError whose
    message starts with ``name(key)`` (the flag, or the file and the key, it came from)."""
    for key, value in values.items():
        problem = _problem(key, value)
        if problem is not None:
            raise UserError(f"{name(key)}: {problem}")


def _problem(key: str, value) -> str | None:
    if value is None:
        return None
    if key in _INTS:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _INTS[key]:
            return f"must be a whole number from 1 to {_INTS[key]}, got {_shown(value)}"
        return None
    if key == "worker_wait":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1e7:
            return f"must be a number of seconds from 0 (wait forever) to 1e7, got {_shown(value)}"
        return None
    if key == "job_extra":
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            return f"must be a list of directives, got {_shown(value)}"
        if len(value) > MAX_DIRECTIVES:
            return f"has {len(value)} directives; at most {MAX_DIRECTIVES}"
        for entry in value:
            problem = _text_problem(entry, _DIRECTIVE, "one sbatch/qsub option such as --exclusive, --qos=high "
                                                       "or -m abe (cgphw adds the #SBATCH/#PBS prefix; allowed: "
                                                       "letters, digits, space, _ . , : = @ / + % -)")
            if problem is not None:
                return problem
        return None
    if key == "kind":
        if not isinstance(value, str) or (value not in ("local", *BATCH_KINDS) and _address(value) is None):
            return f"must be {KINDS_TEXT} (a port from 1 to 65535), got {_shown(value)}"
        return None
    if key in _SHAPES:
        problem = _text_problem(value, *_SHAPES[key])
        if problem is None and key == "memory" and not 1 << 20 <= memory_bytes(value) <= MAX_MEMORY:
            problem = f"must be from 1MB to 1PB per job, got {_shown(value)}"
        return problem
    return None


def _text_problem(value, shape: re.Pattern, expected: str) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, {expected}; got {_shown(value)}"
    if _CONTROL.search(value):
        return (f"holds a control character (a newline would become a shell line of its own in the job "
                f"script): {_shown(value)}")
    if len(value) > MAX_TEXT or not shape.fullmatch(value):
        return f"must be {expected}, got {_shown(value)}"
    return None


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def memory_bytes(text: str) -> int:
    from dask.utils import parse_bytes

    return int(parse_bytes(text.replace(" ", "")))


def scheduler_address(text: str) -> tuple[str, int]:
    """(host, port) of ``tcp://HOST:PORT`` (or ``HOST:PORT``); a UserError names what is wrong."""
    found = _address(text)
    if found is None:
        raise UserError(f"--cluster: must be {KINDS_TEXT} (a port from 1 to 65535), got {_shown(text)}")
    return found


def _address(text: str) -> tuple[str, int] | None:
    found = _ADDRESS.fullmatch(text) if len(text) <= MAX_TEXT and not _CONTROL.search(text) else None
    if found is None or not 1 <= int(found.group(2)) <= 65535:
        return None
    return found.group(1).strip("[]"), int(found.group(2))


def probe_scheduler(text: str, seconds: float | None = None) -> None:
    """The server at the address sends a Dask handshake (a small message naming its Python
    and pickle protocol) within ``seconds``; else a UserError. Distributed's own client would
    believe any length a garbage server sends and try to allocate it."""
    host, port = scheduler_address(text)
    seconds = PROBE_SECONDS if seconds is None else seconds
    where = f"the Dask scheduler at {text}"
    try:
        with socket.create_connection((host, port), timeout=seconds) as sock:
            sock.settimeout(seconds)
            (size,) = struct.unpack("<Q", _receive(sock, 8))
            if not 0 < size <= MAX_HANDSHAKE:
                raise UserError(f"{text} does not answer like a Dask scheduler (its first message claims "
                                f"{size} bytes)")
            body = _receive(sock, size)
    except TimeoutError:
        raise UserError(f"cannot reach {where}: no answer within {seconds:g} s") from None
    except OSError as exc:
        raise UserError(f"cannot reach {where} ({exc.strerror or exc})") from None
    if not _is_handshake(body):
        raise UserError(f"{text} does not answer like a Dask scheduler (its first message is not a Dask handshake)")


def _receive(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 16))
        if not chunk:
            raise OSError(f"the connection closed after {size - left} of {size} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _is_handshake(body: bytes) -> bool:
    from distributed.protocol import loads
    from distributed.protocol.utils import unpack_frames

    try:
        message = loads(unpack_frames(body), deserialize=False)
    except Exception:  # garbage of any kind: not a scheduler
        return False
    return isinstance(message, dict) and "python" in message and "pickle-protocol" in message


def check_log_dir(path: Path) -> None:
    """The job logs' folder is written into #SBATCH/#PBS lines: a plain absolute path only."""
    text = str(path)
    if _CONTROL.search(text) or not re.fullmatch(r"[A-Za-z0-9_./+,@=:~-]+", text):
        raise UserError(f"--out {_shown(text)}: a PBS/SLURM campaign folder's path goes into the job script; "
                        "use only letters, digits and _ . / + , @ = : ~ -")
