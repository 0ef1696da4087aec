"""Where numba keeps the compiled kernels, and whether they still need compiling.

numba caches compiled code in ``__pycache__`` beside the sources. In a read-only install
(system site-packages, a container image) that fails; numba would then try its own
user-wide directory and, if that is not writable either, refuse to import the kernels.
``use_writable_cache`` (run when ``cgphw.cgp`` is imported, before numba reads its
configuration) points NUMBA_CACHE_DIR at ``$XDG_CACHE_HOME/cgphw/numba`` (default
``~/.cache/cgphw/numba``) or, failing that, at ``<tmp>/cgphw-numba-<uid>`` whenever the
package directory cannot be written. A NUMBA_CACHE_DIR set by the user always wins.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from cgphw.progress import step

PACKAGE_DIR = Path(__file__).resolve().parent


def writable(directory: Path) -> bool:
    """Can files be created in ``directory`` (made if missing)? Tried, not guessed: root
    ignores permission bits, and read-only mounts ignore them the other way."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def fallback_cache_dirs(environ=os.environ) -> list[Path]:
    home_cache = Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return [home_cache / "cgphw" / "numba", Path(tempfile.gettempdir()) / f"cgphw-numba-{uid}"]


def choose_cache_dir(package_dir: Path = PACKAGE_DIR, environ=os.environ) -> Path | None:
    """The directory to give numba, or None when its default (or the user's choice) works."""
    if environ.get("NUMBA_CACHE_DIR") or writable(package_dir / "__pycache__"):
        return None
    for candidate in fallback_cache_dirs(environ):
        if writable(candidate):
            return candidate
    return None  # nothing writable: numba compiles without a cache (every run)


def use_writable_cache() -> Path | None:
    chosen = choose_cache_dir()
    if chosen is not None:
        os.environ["NUMBA_CACHE_DIR"] = str(chosen)
        if "numba" in sys.modules:  # already configured: tell it too
            sys.modules["numba"].config.CACHE_DIR = str(chosen)
    return chosen


def kernels_ready() -> bool:
    """True when the search loop is compiled in this process or cached on disk for these
    sources (then starting takes a fraction of a second, not a compile)."""
    from cgphw.cgp import kernels, loop

    for dispatcher in (loop.run_generations, kernels.full_state):
        if dispatcher.signatures:
            continue
        try:  # numba's cache index for this source; empty when missing or stale
            if not dispatcher._cache._cache_file._load_index():  # type: ignore[union-attr]  # numba's private cache
                return False
        except Exception:  # a numba without this internal: say "compiling" to be safe
            return False
    return True


def announce_compile(progress) -> None:
    """Tell ``progress`` (the step "compiling") when the search is about to compile."""
    if progress and not kernels_ready():
        step(progress, "compiling")
