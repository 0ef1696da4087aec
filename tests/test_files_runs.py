"""Issue 9, run directories: nothing cgphw did not write is removed or overwritten; files
that were tampered with or mixed up are caught (exit 1) or refused (exit 2); limits and
interruptions end in one line and leave a run that can be resumed or run again."""
from __future__ import annotations

import errno
import functools
import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cgphw import Limits, MismatchError, SearchSettings, UserError, evolve, load_run, resume
from cgphw.task import Task, example_task

CLI = [sys.executable, "-c", "from cgphw.cli import main; main()"]


def one_error(code_err, code: int, fragment: str) -> str:
    got, err = code_err
    lines = err.strip().splitlines()
    assert got == code and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def small_run(path, generations=50, **kw):
    return evolve(example_task(), SearchSettings(3, 3), Limits(generations), seed=2, out=path, **kw)


def evolve_args(task, out, *extra):
    return ["evolve", task, "--rows", 3, "--cols", 3, "--generations", 20, "--quiet", "--out", out, *extra]


# --- data loss -----------------------------------------------------------------------------------
def test_evolve_into_a_folder_of_user_files_touches_nothing(tmp_path, cli):
    """`evolve task.npz --costs costs.json --out .` deleted costs.json; a user's best.json or
    stats.csv in --out were overwritten. Now a folder cgphw did not write is refused, even with --force."""
    from cgphw.costs import default_costs_path

    example_task().save(tmp_path / "task.npz")
    (tmp_path / "costs.json").write_bytes(default_costs_path().read_bytes())
    (tmp_path / "best.json").write_text("my own notes")
    (tmp_path / "stats.csv").write_text("a,b\n1,2\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for force in ([], ["--force"]):
        out = cli(*evolve_args(tmp_path / "task.npz", tmp_path, "--costs", tmp_path / "costs.json", *force))
        one_error(out[::2], 2, "was not written by cgphw")
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_force_replaces_only_the_run_files(tmp_path, cli):
    run = tmp_path / "run"
    small_run(run)
    (run / "notes.txt").write_text("mine")
    first_id = json.loads((run / "config.json").read_text())["run_id"]
    one_error(cli(*evolve_args(example_task().save(tmp_path / "t.npz"), run))[::2], 2,
              "already holds a run")
    assert cli(*evolve_args(tmp_path / "t.npz", run, "--force"))[0] == 0
    assert (run / "notes.txt").read_text() == "mine"
    assert json.loads((run / "config.json").read_text())["run_id"] != first_id
    assert load_run(run).checkpoint.generation == 20


def test_a_run_is_not_written_over_another_kind_of_directory(tmp_path):
    from cgphw.hw.export import export

    small_run(tmp_path / "run", generations=2)
    rtl = export(tmp_path / "run", out_dir=tmp_path, name="rtl", force=True).directory
    with pytest.raises(UserError, match="holds a cgphw export directory, not a run directory"):
        small_run(rtl, force=True)


# --- tampering and mix-ups ------------------------------------------------------------------------
def _edit_json(path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _other_genome(run):
    """A valid genome of the run's grid other than its best: what a hand edit would make."""
    from cgphw.cgp.genome import Genome

    doc = json.loads((run / "best.json").read_text())["genome"]
    genome = Genome.from_json(doc)
    genes = genome.genes.copy()
    _, lo, hi = genome.grid.pin_range(genome.grid.cols)
    genes[-1] = next(p for p in range(lo, hi) if p != genes[-1])  # output 15 reads another node
    return Genome(genome.grid, genes)


@pytest.mark.parametrize("case, fragment", [
    ("genome-edited", "does not match its recorded hash"),
    ("genome-and-hash-edited", "when evaluated again"),
    ("task-swapped", "not the task the run started with"),
    ("costs-edited", "differs from the cost table the run started with"),
    ("best-of-another-run", "belongs to another run"),
    ("checkpoint-of-another-run", "belongs to another run"),
    ("metrics-edited", "claims energy_pj"),
])
def test_tampered_run_is_a_mismatch_for_show_export_resume(tmp_path, cli, case, fragment):
    """show and export trusted stored metrics (a genome edited under metrics still claiming
    SE 0 exported with exit 0); a swapped task of the same shape resumed silently; files of
    two runs were accepted together. Each is now caught: exit 1, one line."""
    run, other = tmp_path / "run", tmp_path / "other"
    small_run(run)
    if case == "genome-edited":
        _edit_json(run / "best.json", lambda d: d.update(genome=_other_genome(run).to_json()))
    elif case == "genome-and-hash-edited":
        g = _other_genome(run)
        _edit_json(run / "best.json", lambda d: d.update(genome=g.to_json(), genome_hash=g.digest()))
    elif case == "task-swapped":
        t = example_task()
        Task(t.inputs, (t.targets.astype(int) // 2).astype(np.int8)).save(run / "task.npz")  # same shape
    elif case == "costs-edited":
        _edit_json(run / "costs.json", lambda d: d["gates"]["1"].update(energy_pj=0.0))
    elif case in ("best-of-another-run", "checkpoint-of-another-run"):
        small_run(other)
        name = "best.json" if case.startswith("best") else "checkpoint.json"
        (run / name).write_bytes((other / name).read_bytes())
    elif case == "metrics-edited":
        _edit_json(run / "best.json", lambda d: d["metrics"].update(energy_pj=0.001))
    for argv in (["show", run], ["show", run / "best.json", "--json"],
                 ["export", run, "--out", tmp_path / "o", "--force"], ["evolve", "--resume", run, "--quiet"]):
        one_error(cli(*argv)[::2], 1, fragment)
    assert not (tmp_path / "o").exists()
    with pytest.raises(MismatchError):
        load_run(run)


def test_run_format_from_another_version_is_refused(tmp_path, cli):
    run = tmp_path / "run"
    small_run(run, generations=2)
    _edit_json(run / "best.json", lambda d: d.update(format="cgphw-run/99"))
    one_error(cli("show", run)[::2], 2,
              "'cgphw-run/99', expected 'cgphw-run/2': it is from another version")
    one_error(cli("show", run / "best.json")[::2], 2, "another version")


def test_show_json_is_strict_json(tmp_path, cli):
    """`show --json` emitted NaN; stored NaN is refused on reading and output is strict JSON."""
    run = tmp_path / "run"
    small_run(run, generations=2)
    code, out, _ = cli("show", run, "--json")
    assert code == 0
    json.loads(out, parse_constant=lambda c: pytest.fail(f"show --json printed {c}"))
    best = (run / "best.json").read_text()
    (run / "best.json").write_text(best.replace('"energy_pj": ', '"energy_pj": NaN, "x": ', 1))
    one_error(cli("show", run, "--json")[::2], 2, "NaN is not a number JSON allows")


def test_a_second_writer_is_kept_out_by_the_lock(tmp_path, cli):
    """`--force` while another process writes the run left config and best.json of two runs."""
    from cgphw.dirs import DirLock

    run = tmp_path / "run"
    small_run(run, generations=2)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    held = DirLock(run).acquire()  # what a running `cgphw evolve` holds
    try:
        one_error(cli(*evolve_args(example_task().save(tmp_path / "t.npz"), run, "--force"))[::2], 2,
                  "another cgphw process is writing")
        one_error(cli("evolve", "--resume", run, "--generations", 10)[::2], 2, "another cgphw process")
    finally:
        held.release()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert cli("evolve", "--resume", run, "--generations", 10, "--quiet")[0] == 0


@pytest.mark.slow
def test_force_during_a_running_evolve_is_refused(tmp_path):
    example_task().save(tmp_path / "t.npz")
    run = tmp_path / "run"
    first = subprocess.Popen(CLI + [str(a) for a in evolve_args(tmp_path / "t.npz", run)[:-2]]
                             + ["--generations", "100000000", "--out", str(run), "--checkpoint-every", "0.2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (run / "checkpoint.json").exists():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        second = subprocess.run(CLI + [str(a) for a in evolve_args(tmp_path / "t.npz", run, "--force")],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "another cgphw process is writing" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert load_run(run).checkpoint.generation > 0


# --- limits and clean failures ------------------------------------------------------------------
def _npz_with_header(path, shapes):
    """An .npz whose arrays claim these shapes: the header alone, no data (a bomb's opening)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, shape in shapes.items():
            with archive.open(f"{name}.npy", "w") as fh:
                np.lib.format.write_array_header_1_0(fh, {"descr": "|i1", "fortran_order": False, "shape": shape})


def test_a_task_too_large_is_refused_before_reading(tmp_path, cli):
    _npz_with_header(tmp_path / "big.npz", {"inputs": (75_000_000, 9), "targets": (75_000_000, 16)})
    line = one_error(cli(*evolve_args(tmp_path / "big.npz", tmp_path / "r"))[::2], 2,
                     "75,000,000 x 9; at most 16,777,216 values per array")
    assert "task file" in line and not (tmp_path / "r").exists()


def test_json_nested_too_deep_is_one_line(tmp_path, cli):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "g.json").write_text(deep)
    run = tmp_path / "run"
    small_run(run, generations=2)
    (run / "best.json").write_text('{"format": "cgphw-run/2", "genome": ' + deep + "}")
    for argv in (["show", tmp_path / "g.json"], ["export", tmp_path / "g.json", "--out", tmp_path / "o"],
                 ["show", run], ["export", run, "--out", tmp_path / "o"]):
        one_error(cli(*argv)[::2], 2, "nests JSON deeper than 64 levels")


@pytest.mark.parametrize("key", ["rows", "task", "lambda", "run_id"])
def test_an_edited_config_is_one_line(tmp_path, cli, key):
    run = tmp_path / "run"
    small_run(run, generations=2)
    _edit_json(run / "config.json", lambda d: d.pop(key))
    one_error(cli("evolve", "--resume", run)[::2], 2, f"is malformed: it lacks {key!r}")


@functools.lru_cache(maxsize=1)
def _uninterrupted():
    return evolve(example_task(), SearchSettings(rows=5, cols=5), Limits(generations=300_000), seed=4)


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_full_disk_during_evolve_leaves_a_resumable_run(tmp_path, cli, monkeypatch, error):
    """A full disk (or a folder turned read-only) during evolve gave a traceback and a run that
    could be neither resumed nor run again. Now: one line; the last checkpoint is whole; the
    resumed run equals the uninterrupted one; and the run can be started again with --force."""
    import cgphw.cgp.runwriter as rundir

    real, calls = rundir.write_json_atomic, []

    def fails_from_the_sixth(path, doc, *a, **kw):  # config, checkpoint+best at start, one more pair
        calls.append(path)
        if len(calls) >= 6:
            raise OSError(error, "simulated", str(path))
        return real(path, doc, *a, **kw)

    monkeypatch.setattr(rundir, "write_json_atomic", fails_from_the_sixth)
    example_task().save(tmp_path / "t.npz")
    run = tmp_path / "run"
    argv = ["evolve", tmp_path / "t.npz", "--rows", 5, "--cols", 5, "--seed", 4, "--generations", 300_000,
            "--checkpoint-every", "0.02", "--quiet", "--out", run]
    line = one_error(cli(*argv)[::2], 2, "cgphw evolve --resume")
    assert "cannot write" in line and "checkpoint (generation" in line
    monkeypatch.setattr(rundir, "write_json_atomic", real)
    state = load_run(run).checkpoint
    assert 0 < state.generation < 300_000 and state.stop_reason is None
    resumed = resume(run)
    assert resumed.generations == 300_000 and resumed.genome == _uninterrupted().genome
    assert cli(*argv[:-1], run, "--force", "--generations", 10)[0] == 0  # and it can run again


def test_stats_that_cannot_be_written_stop_the_run_cleanly(tmp_path, cli, monkeypatch):
    """A failed flush of stats.csv (OSError without a file name) was a traceback."""
    import cgphw.cgp.runwriter as rundir

    flushes = []

    def flush(self):
        flushes.append(1)
        if len(flushes) > 2:
            raise OSError(errno.EFBIG, "File too large")
        self.fh.flush()

    monkeypatch.setattr(rundir.StatsLog, "flush", flush)
    run = tmp_path / "run"
    argv = [*evolve_args(example_task().save(tmp_path / "t.npz"), run)[:-2], "--generations", 100_000_000,
            "--time-budget", 30, "--out", run]
    line = one_error(cli(*argv)[::2], 2, "stats.csv (File too large)")
    assert "cgphw evolve --resume" in line
    checkpoint = load_run(run).checkpoint
    assert f"generation {checkpoint.generation:,})" in line  # saved after the failure: nothing lost


def test_sigint_during_start_up_is_one_line_and_leaves_nothing(tmp_path, cli, monkeypatch):
    import cgphw.cgp.search as search
    import cgphw.task as task_mod

    example_task().save(tmp_path / "t.npz")
    run = tmp_path / "run"

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    for where in ((search, "setup_engine"), (task_mod.Task, "save")):  # compiling; writing the run's first files
        with monkeypatch.context() as m:
            m.setattr(*where, interrupted)
            code, _, err = cli(*evolve_args(tmp_path / "t.npz", run))
        assert code == 130 and err.strip() == "interrupted", err
        assert not run.exists()
    assert cli(*evolve_args(tmp_path / "t.npz", run))[0] == 0  # and it runs afterwards


def test_a_run_of_the_previous_version_can_be_replaced_with_force(tmp_path, cli):
    """Runs written before markers existed (config format cgphw-run-config/1) stay replaceable:
    `make demo` and `make example` rerun over them; only their run files go."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"format": "cgphw-run-config/1", "rows": 5}))
    (old / "best.json").write_text("{}")
    (old / "notes.txt").write_text("mine")
    task = example_task().save(tmp_path / "t.npz")
    one_error(cli(*evolve_args(task, old))[::2], 2, "already holds a run")
    assert cli(*evolve_args(task, old, "--force"))[0] == 0
    assert (old / "notes.txt").read_text() == "mine" and load_run(old).checkpoint.generation == 20


def test_full_disk_at_the_start_leaves_nothing_behind(tmp_path, cli, monkeypatch):
    import cgphw.cgp.runwriter as runwriter

    def full(path, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runwriter, "write_json_atomic", full)
    run = tmp_path / "run"
    line = one_error(cli(*evolve_args(example_task().save(tmp_path / "t.npz"), run))[::2], 2,
                     "cannot start the run")
    assert "No space left on device" in line and not run.exists()
    monkeypatch.undo()
    assert cli(*evolve_args(tmp_path / "t.npz", run))[0] == 0


SCRIPT = Path(sys.executable).with_name("cgphw")  # the console script of this environment


def _wait_until_loading_numpy(proc) -> None:
    """Until the process maps numpy's libraries: inside cgphw's imports, past the interpreter's own
    start-up (a Ctrl-C before any line of cgphw runs is Python's, not ours; a fixed delay landed
    there on a loaded machine). Without /proc, a short delay."""
    maps = Path(f"/proc/{proc.pid}/maps")
    if not maps.exists():
        time.sleep(0.15)
        return
    end = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < end:
        try:
            if "numpy" in maps.read_text():
                return
        except OSError:
            return
        time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.skipif(not SCRIPT.is_file(), reason="no cgphw console script beside this Python")
@pytest.mark.parametrize("moment", ["imports", "first-files", "searching"])
def test_real_sigint_during_start_up(tmp_path, moment):
    """Ctrl-C at some moment of start-up (imports, compiling, writing the run's first files,
    the first generations): never a traceback; the directory is absent, resumable, or replaceable.
    Each moment is found by what the run has written, not by a delay (start-up takes from under
    a second to minutes, with a cold numba cache on a loaded machine)."""
    task = example_task().save(tmp_path / "t.npz")
    run = tmp_path / "run"
    argv = [str(a) for a in evolve_args(task, run)[1:-2]] + ["--generations", "50000000", "--out", str(run)]
    proc = subprocess.Popen([str(SCRIPT), "evolve", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = {"imports": None, "first-files": run, "searching": run / "checkpoint.json"}[moment]
    if marker is None:
        _wait_until_loading_numpy(proc)
    else:
        end = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.005)
        assert marker.exists(), f"the run never wrote {marker.name}"
        if moment == "searching":
            time.sleep(0.3)  # a few generations in
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err)
    if moment == "searching":
        assert "checkpoint saved" in err and load_run(run).checkpoint.generation > 0, err
    if (run / "checkpoint.json").exists():
        resume(run, generations=load_run(run).checkpoint.generation + 10)
    elif run.exists():
        assert evolve(example_task(), SearchSettings(3, 3), Limits(5), out=run, force=True).generations == 5


# --- UserError is a ValueError: no `except ValueError` inside cgphw may swallow one ----------------
def test_a_notebooks_except_valueerror_catches_a_user_error():
    from cgphw.errors import SimulatorError

    for error in (UserError, MismatchError, SimulatorError):
        try:
            raise error("bad input")
        except ValueError as exc:
            assert isinstance(exc, UserError)


def test_a_stored_rate_out_of_range_is_named_not_called_a_malformed_state(tmp_path, cli):
    """resume wraps the checkpoint's ValueErrors as "a malformed state": the engine's own UserError
    (the rate it refuses) must come through as it is."""
    run = tmp_path / "run"
    small_run(run, generations=2)
    _edit_json(run / "checkpoint.json", lambda d: d["state"].update(rate=0.5))
    one_error(cli("evolve", "--resume", run, "--quiet")[::2], 2, "the stored mutation rate 0.5 is outside")


def test_a_record_check_of_its_own_comes_through_unchanged():
    """records.from_json turns a record's ValueError into "malformed"; a UserError (MismatchError
    exit 1, a SettingError naming the setting) raised by the record's own check keeps its kind and text."""
    from dataclasses import dataclass

    from cgphw import records

    @dataclass(frozen=True)
    class Checked:
        n: int

        def __post_init__(self):
            if self.n < 0:
                raise ValueError("n must be >= 0")
            if self.n == 1:
                raise MismatchError("n does not match the other file")

    with pytest.raises(UserError, match=r"^src is malformed: n must be >= 0$"):
        records.from_json(Checked, {"n": -1}, "src")
    with pytest.raises(MismatchError, match=r"^n does not match the other file$"):
        records.from_json(Checked, {"n": 1}, "src")
