"""The layer-engine manifest (``NAME_LAYER.json`` beside the circuit's export, format
``cgphw-layer/1``): what the engine's Verilog is, how to drive it, what it was built from, and
the sha256 of every file it names. ``load_layer_manifest`` checks all of that before anything
trusts the directory (a malformed file: UserError; an edited one: MismatchError)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cgphw.errors import MismatchError, UserError
from cgphw.files import member, read_json, sha256_file

FORMAT = "cgphw-layer/1"
ROLES = ("verilog", "rtlil", "stimulus", "testbench")

PROTOCOL = ("clk rising edge; rst synchronous, active high. A word on in_data is taken at the edge where "
            "in_valid and in_ready are high (in_ready depends on the engine's state only). Words stream in "
            "the order image, lane group, output position, slice of T taps; results come out in the order "
            "image, lane group, output position, one out_data word of P codes per position with out_valid. "
            "With an external weight memory, the engine drives w_addr/w_read and expects w_data one cycle "
            "later.")


@dataclass(frozen=True, eq=False)
class LayerManifest:
    path: Path
    doc: dict
    top: str
    layer: str
    circuit: str  # the circuit's export manifest (file name in the same directory)
    genome_hash: str
    config: dict  # lanes, taps, reuse, mult_bits
    source: dict  # kind, pipeline, ...
    files: dict  # role -> Path

    @property
    def directory(self) -> Path:
        return self.path.parent


def layer_manifest_doc(top: str, layer: str, circuit_manifest: str, genome_hash: str, config: dict,
                       source: dict, geometry: dict, requant: dict, quantisation: dict, ports: list,
                       cycles_per_image: int, stimulus: dict, model: dict,
                       files: dict[str, tuple[str, bytes | str]]) -> dict:
    """The manifest document; ``files`` maps role -> (file name, content) of what it names."""
    names = {role: name for role, (name, _content) in files.items()}
    digests = {name: _sha(content) for name, content in files.values()}
    return {"format": FORMAT, "top": top, "layer": layer, "circuit": circuit_manifest, "genome_hash": genome_hash,
            "config": config, "source": source, "geometry": geometry, "requant": requant,
            "quantisation": quantisation, "model": model, "ports": ports, "clock": "clk", "reset": "rst",
            "result_latency": 3, "cycles_per_image": cycles_per_image, "protocol": PROTOCOL,
            "stimulus": stimulus, "files": names, "sha256": digests}


def _sha(content: bytes | str) -> str:
    import hashlib

    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


def find_layer_manifest(directory: str | os.PathLike, top: str) -> Path | None:
    path = Path(directory) / f"{top}.json"
    return path if path.is_file() else None


def load_layer_manifest(path: str | os.PathLike) -> LayerManifest:
    path = Path(path)
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise UserError(f"{path} is not a layer-engine manifest (format {found!r}, expected {FORMAT!r})")
    try:
        top, layer, circuit = str(doc["top"]), str(doc["layer"]), str(doc["circuit"])
        genome_hash, config, source = str(doc["genome_hash"]), dict(doc["config"]), dict(doc["source"])
        names, digests = dict(doc["files"]), dict(doc["sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is not a valid layer-engine manifest ({exc.__class__.__name__}: {exc})") from None
    if set(names) - set(ROLES) or "verilog" not in names:
        raise UserError(f"{path} names files for roles {sorted(names)}; expected some of {', '.join(ROLES)}")
    files = {}
    for role, name in names.items():
        file = member(path.parent, name, f"the {role} file of {path.name}")
        if not file.is_file():
            raise UserError(f"{path} names {name}, which is missing")
        if digests.get(name) != sha256_file(file):
            raise MismatchError(f"{file} is not the file exported with {path.name} (its sha256 differs): "
                                "it was edited or replaced; export again")
        files[role] = file
    circuit_path = member(path.parent, circuit, f"the circuit manifest of {path.name}")
    if not circuit_path.is_file():
        raise UserError(f"{path} belongs to the circuit export {circuit}, which is missing")
    circuit_doc = read_json(circuit_path)
    if not isinstance(circuit_doc, dict) or circuit_doc.get("genome_hash") != genome_hash:
        raise MismatchError(f"{path.name} was built from another circuit than the one in {circuit}: export again")
    return LayerManifest(path, doc, top, layer, circuit, genome_hash, config, source, files)
