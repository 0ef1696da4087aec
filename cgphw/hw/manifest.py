"""The export manifest (NAME.json beside the RTL): its format tag and how to find one.
Kept free of Amaranth so that readers of an RTL directory load quickly."""
from __future__ import annotations

import json
import os
from pathlib import Path

from cgphw.errors import UserError

FORMAT = "cgphw-rtl/1"


def find_manifest(path: str | os.PathLike) -> Path | None:
    """The export manifest PATH names: the file itself, or in a directory its NAME.json, else
    its one cgphw-rtl manifest. None when there is none; UserError when several compete."""
    path = Path(path)
    if path.is_file():
        return path if path.suffix == ".json" and _is_manifest(path) else None
    if not path.is_dir():
        raise UserError(f"{path} does not exist")
    named = path / f"{path.name}.json"
    if _is_manifest(named):
        return named
    found = [p for p in sorted(path.glob("*.json")) if _is_manifest(p)]
    if len(found) > 1:
        raise UserError(f"{path} holds several cgphw-rtl manifests ({', '.join(p.name for p in found)}); "
                        "name the one to use")
    return found[0] if found else None


def _is_manifest(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT
