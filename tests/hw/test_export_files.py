"""Issue 9, export directories: an export replaces only what cgphw wrote there, never a
folder or file of the user's; the manifest it writes is read back whole by load_manifest."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_export import make_run, ring_genome

import cgphw
from cgphw.task import example_task


def _tree(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_export_refuses_a_folder_of_user_files(tmp_path, cli):
    """`export RUN --out proj --name docs` removed the user's proj/docs/ tree."""
    docs = tmp_path / "proj" / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "index.md").write_text("my documentation")
    (docs / "sub" / "figure.txt").write_text("keep me")
    before = _tree(tmp_path / "proj")
    code, _, err = cli("export", make_run(tmp_path, ring_genome()), "--out", tmp_path / "proj",
                       "--name", "docs")
    assert code == 2 and "was not written by cgphw" in err and len(err.strip().splitlines()) == 1
    assert _tree(tmp_path / "proj") == before


def test_reexport_keeps_user_files_and_replaces_its_own(tmp_path, cli):
    """A re-export deleted files the user added to rtl_out/NAME/. Now they stay; cgphw's own
    files are replaced, and those the new export does not write (an old synthesis report) go."""
    run = make_run(tmp_path, ring_genome())
    out = tmp_path / "rtl"
    first = cgphw.export(run, out_dir=out, name="ring")
    target = first.directory
    (target / "notes.txt").write_text("mine")
    (target / "tb").mkdir()
    (target / "tb" / "bench.v").write_text("module bench; endmodule\n")
    (target / "ring.synth.json").write_text("{}")  # stands for a report synth wrote: listed in the marker
    marker = json.loads((target / ".cgphw").read_text())
    (target / ".cgphw").write_text(json.dumps({**marker, "files": marker["files"] + ["ring.synth.json"]}))
    again = cgphw.export(run, out_dir=out, name="ring", pipeline=2)
    assert (target / "notes.txt").read_text() == "mine" and (target / "tb" / "bench.v").is_file()
    assert not (target / "ring.synth.json").exists()
    assert again.manifest.pipeline == 2 and again.manifest.latency >= 1
    # the files it lists as exported are its own, not the user's kept beside them
    assert again.files == ("ring.il", "ring.json", "ring.v", "ring_rom.il", "ring_rom.v")
    printed = cli("export", run, "--out", out, "--name", "ring")[1].splitlines()
    assert [line.strip() for line in printed[1:]] == [str(target / f) for f in again.files]
    assert sorted(json.loads((target / ".cgphw").read_text())["files"]) == sorted(
        ["ring.v", "ring.il", "ring_rom.v", "ring_rom.il", "ring.json"])


def test_a_user_file_named_like_a_new_export_file_stops_the_export(tmp_path, cli):
    genome_file = tmp_path / "g.json"
    ring_genome().save(genome_file)
    out = tmp_path / "rtl"
    assert cli("export", genome_file, "--out", out, "--name", "x")[0] == 0  # no task: no ROM baseline
    (out / "x" / "x_rom.v").write_text("// my own ROM")
    code, _, err = cli("export", make_run(tmp_path, ring_genome()), "--out", out, "--name", "x")
    assert code == 2 and "x_rom.v, which cgphw did not write" in err
    assert (out / "x" / "x_rom.v").read_text() == "// my own ROM"


def test_export_result_and_manifest_api(tmp_path):
    run = make_run(tmp_path, ring_genome(), name="ring")
    result = cgphw.export(run, out_dir=tmp_path / "rtl")
    m = cgphw.load_manifest(result.directory)
    assert isinstance(result, cgphw.ExportResult) and isinstance(m, cgphw.Manifest)
    assert m.name == "ring" and m.genome == ring_genome() and m.genome_hash == ring_genome().digest()
    assert m.task is not None and (m.task.targets == example_task().targets).all()
    assert isinstance(m.metrics, cgphw.Metrics) and m.metrics.error_se == 0.0 and m.metrics.threshold_reached
    assert m.verilog == result.directory / "ring.v" and m.baseline.values == tuple(example_task().targets.ravel())
    assert [p.name for p in m.ports] == ["stored", "weights"] and m.port("weights").width == 128
    assert result.manifest.genome == m.genome and result.files == ("ring.il", "ring.json", "ring.v", "ring_rom.il",
                                                                   "ring_rom.v")


def test_committed_example_reads_back_whole():
    example = Path(__file__).resolve().parents[2] / "rtl_out" / "lenet5_core_ring"
    m = cgphw.load_manifest(example)
    assert m.metrics.error_se == 0 and m.baseline is not None
    synth = json.loads((example / "lenet5_core_ring.synth.json").read_text())
    assert synth["genome_hash"] == m.genome_hash and len(synth["proof"]) == 4
    assert all(p["equivalent"] for p in synth["proof"].values())


@pytest.mark.parametrize("edit, code, fragment", [
    (lambda d, o: d["files"].update(verilog=str(o / "ring.v")), 2, "must be a plain file name"),
    (lambda d, o: d["files"].update(rtlil="../other/ring.il"), 2, "must be a plain file name"),
    (lambda d, o: d.update(genome_hash="0" * 16), 1, "does not match its recorded hash"),
    (lambda d, o: d["sha256"].update({"ring.v": "0" * 64}), 1, "is not the file `cgphw export` wrote"),
    (lambda d, o: d.update(format="cgphw-rtl/99"), 2, "another version of cgphw"),
    (lambda d, o: d["baseline"].update(values=[0] * 16), 1, "not the weights of its task"),
])
def test_load_manifest_refuses_or_catches(tmp_path, edit, code, fragment):
    from cgphw.errors import MismatchError, UserError

    run = make_run(tmp_path, ring_genome(), name="ring")
    other = cgphw.export(run, out_dir=tmp_path, name="other").directory
    target = cgphw.export(run, out_dir=tmp_path / "rtl").directory
    path = target / "ring.json"
    doc = json.loads(path.read_text())
    edit(doc, other)
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=fragment) as exc:
        cgphw.load_manifest(target)
    assert isinstance(exc.value, MismatchError) == (code == 1) and exc.value.exit_code == code
