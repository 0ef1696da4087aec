"""What a campaign wrote before is checked, not trusted: a finished run's record.json is
derived again from its run's files, one `cgphw run` at a time writes a campaign folder, and
`report` reads campaign.json's format as `run` does."""
import errno
import json

import pandas as pd
import pytest

from cgphw.dirs import DirLock
from cgphw.files import write_json_atomic

from campaign_fixtures import experiment_file

KERNEL = "values:-42,-36,64,19,67,127,60,54,16->26,-61,-64,-60,22,-25,102,-5,32,32,-62,-9,-12,-32,-96,-76"
VERIFIED = f"""stages = ["evolve", "export", "verify"]
[task]
selector = "{KERNEL}"
[search]
grid = "5x5"
threshold = 0
seed = 1
generations = 3_000
[verify]
vectors = 20
"""


def run_cli(cli, *args):
    result = cli(*args)
    assert result.code == 0, result.err
    return result


@pytest.fixture()
def finished(tmp_path, dask_client, cli):
    """A finished one-run campaign (search, export, verification): its folder, the command
    that runs it, its run folder."""
    path = experiment_file(tmp_path / "trust.toml", VERIFIED, name="trust")
    out = tmp_path / "out"
    command = ("run", str(path), "--out", str(out), "--cluster", dask_client.scheduler.address, "--quiet",
               "--no-report")
    run_cli(cli, *command)
    (run_dir,) = (out / "runs").iterdir()
    assert pd.read_parquet(out / "results.parquet")["verified"].tolist() == ["pass"]
    return out, command, run_dir


@pytest.mark.slow
def test_a_forged_record_is_replaced_by_the_row_its_files_give(finished, cli):
    out, command, run_dir = finished
    honest = json.loads((run_dir / "record.json").read_text())
    forged = dict(honest, row=dict(honest["row"], gates=3, energy=0.001, top1_after=1.0))
    write_json_atomic(run_dir / "record.json", forged)
    printed = run_cli(cli, *command)
    assert "1 runs: 1 ran now, 0 were already finished" in printed.out
    table = pd.read_parquet(out / "results.parquet")
    assert table["gates"].tolist() == [honest["row"]["gates"]] and table["gates"].tolist() != [3]
    assert json.loads((run_dir / "record.json").read_text()) == honest
    # and a record that holds up is reused: nothing runs
    assert "0 ran now, 1 were already finished" in run_cli(cli, *command).out


@pytest.mark.slow
def test_a_changed_best_json_does_not_keep_verified_pass(finished, cli):
    out, command, run_dir = finished
    best = run_dir / "evolve" / "best.json"
    doc = json.loads(best.read_text())
    doc["metrics"]["gates"] = 1
    write_json_atomic(best, doc)
    code, _, err = cli(*command)
    assert code == 1 and err.startswith("error: 1 run(s) failed") and "best.json" in err
    assert err.count("\n") == 1
    assert len(pd.read_parquet(out / "results.parquet")) == 0  # no row says "verified pass"
    assert json.loads(best.read_text()) == doc  # the evidence stays


@pytest.mark.slow
def test_a_best_json_replaced_by_another_valid_circuit_is_exported_and_verified_again(finished, cli):
    """A best.json that still holds up on its own (another circuit, its own hash and metrics)
    no longer matches the record: export and verification run again, for that circuit."""
    from cgphw.campaign.flow import read_log
    from cgphw.cgp.genome import Genome

    out, command, run_dir = finished
    best = run_dir / "evolve" / "best.json"
    doc = json.loads(best.read_text())
    genome = Genome.from_json(doc["genome"])
    inactive = sorted(set(range(len(doc["genome"]["nodes"]))) - {int(k) for k in genome.active_nodes()})
    assert inactive, "the circuit uses every node"
    node = doc["genome"]["nodes"][inactive[0]]
    node[2] = next(g for g in doc["genome"]["function_set"] if g != node[2])  # a gate no output reads
    doc["genome_hash"] = Genome.from_json(doc["genome"]).digest()
    write_json_atomic(best, doc)
    before = len(read_log(run_dir))
    printed = run_cli(cli, *command)
    assert "1 runs: 1 ran now, 0 were already finished" in printed.out
    again = [(e["stage"], e["event"]) for e in read_log(run_dir)[before:]]
    assert ("export", "start") in again and ("verify", "start") in again
    row = pd.read_parquet(out / "results.parquet").iloc[0]
    verdict = json.loads((run_dir / "verify.json").read_text())
    assert row["genome_hash"] == doc["genome_hash"] == verdict["genome_hash"] and row["verified"] == "pass"


def test_a_second_run_on_a_locked_campaign_folder_is_refused(tmp_path, cli):
    path = experiment_file(tmp_path / "trust.toml", VERIFIED, name="trust")
    out = tmp_path / "out"
    out.mkdir()
    lock = DirLock(out).acquire()  # another `cgphw run` holds the folder
    try:
        code, _, err = cli("run", str(path), "--out", str(out), "--quiet")
    finally:
        lock.release()
    assert code == 2 and err.startswith(f"error: another cgphw process is writing {out}") and err.count("\n") == 1
    assert [p.name for p in out.iterdir()] == [".cgphw.lock"]


@pytest.mark.slow
def test_report_and_results_refuse_a_campaign_format_run_refuses(finished, cli, tmp_path):
    out, command, _ = finished
    about = json.loads((out / "campaign.json").read_text())
    write_json_atomic(out / "campaign.json", dict(about, format="cgphw-campaign/2"))
    message = f"error: {out / 'campaign.json'} is not a cgphw campaign file of format 'cgphw-campaign/1'"
    for args in (command, ("report", str(out)), ("results", str(out))):
        code, _, err = cli(*args)
        assert code == 2 and err.startswith(message), args
    assert not (out / "report.html").exists()


@pytest.mark.slow
def test_report_out_replaces_only_its_own_report_and_a_full_disk_is_one_line(finished, cli, tmp_path,
                                                                            monkeypatch):
    out, command, _ = finished
    mine = tmp_path / "page.html"
    mine.write_text("<p>my page</p>")
    code, _, err = cli("report", str(out), "--out", str(mine))
    assert code == 2 and err == (f"error: {mine} exists and is not a campaign report cgphw wrote: pass --force to "
                                 "replace it, or choose another path\n")
    assert mine.read_text() == "<p>my page</p>"
    run_cli(cli, "report", str(out), "--out", str(mine), "--force")
    assert "<img" in mine.read_text()
    run_cli(cli, "report", str(out), "--out", str(mine))  # its own report: replaced
    # a disk that fills while the results or the report are written: one line, nothing half-written
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    code, _, err = cli(*command)
    assert code == 2 and err.startswith(f"error: cannot write {out / 'results.parquet'} (No space left on device)")
    assert err.count("\n") == 1 and not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    import cgphw.files

    monkeypatch.setattr(cgphw.files.os, "fdopen", lambda *a, **kw: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    code, _, err = cli("report", str(out), "--out", str(tmp_path / "new.html"))
    assert code == 2 and err == f"error: cannot write the report {tmp_path / 'new.html'} (No space left on device)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["page.html", "out", "trust.toml"])
