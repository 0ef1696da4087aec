"""Where the shipped networks live: the repository's top-level ``models/`` folder, which a
wheel carries as ``cgphw/models/`` (setuptools ``package-dir``). An installed package finds
its copy; a source checkout or an editable install finds the folder beside the package."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def models_dir() -> Path:
    package = Path(str(resources.files("cgphw")))
    packaged = package / "models"
    return packaged if packaged.is_dir() else package.parent / "models"


def shipped_file(relative: str) -> Path:
    """A file of the shipped networks, e.g. ``lenet5_mnist5k.pt`` or ``mobilenetv2/images``."""
    return models_dir() / relative
