"""The job scripts a PBS or SLURM campaign submits, rendered without a batch system."""
import pytest

from cgphw.campaign.cluster import ClusterSettings, job_script
from cgphw.cli import main
from cgphw.errors import UserError


def test_pbs_job_script_carries_queue_walltime_memory_and_cores():
    text = job_script(ClusterSettings(kind="pbs", queue="gpu_long", walltime="24:00:00", memory="16GB", cores=8,
                                      account="OPEN-1", job_extra=("-m abe",)))
    assert text.startswith("#!/usr/bin/env bash")
    for line in ("#PBS -q gpu_long", "#PBS -l walltime=24:00:00", "#PBS -A OPEN-1", "#PBS -m abe"):
        assert line in text
    assert "#PBS -l select=1:ncpus=8:mem=15GB" in text
    # eight single-threaded worker processes: one run per core
    assert "--nworkers 8" in text and "--nthreads 1" in text and "export OMP_NUM_THREADS=1" in text


def test_slurm_job_script_carries_partition_walltime_memory_and_cores():
    text = job_script(ClusterSettings(kind="slurm", queue="qcpu", walltime="02:00:00", memory="4GB", cores=2,
                                      processes=1))
    for line in ("#SBATCH -p qcpu", "#SBATCH -t 02:00:00", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G"):
        assert line in text
    assert "--nthreads 2" in text and "distributed.cli.dask_worker" in text


def test_settings_come_from_the_experiment_then_the_flags(tmp_path, capsys):
    path = tmp_path / "e.toml"
    path.write_text('format = "cgphw-experiment/1"\nname = "e"\n[task]\nselector = "core-ring"\n'
                    '[search]\ngrid = "5x5"\ngenerations = 10\n'
                    '[cluster]\nkind = "slurm"\nqueue = "short"\nwalltime = "01:00:00"\nmemory = "2GB"\n')
    main(["run", str(path), "--job-script"])
    text = capsys.readouterr().out
    assert "#SBATCH -p short" in text and "#SBATCH -t 01:00:00" in text
    main(["run", str(path), "--job-script", "--queue", "long", "--walltime", "08:00:00"])
    text = capsys.readouterr().out
    assert "#SBATCH -p long" in text and "#SBATCH -t 08:00:00" in text


def test_a_batch_cluster_needs_walltime_and_memory():
    with pytest.raises(UserError, match="needs --walltime and --memory"):
        job_script(ClusterSettings(kind="pbs"))
    with pytest.raises(UserError, match="only pbs and slurm"):
        job_script(ClusterSettings(kind="local"))


def test_loading_dask_jobqueue_leaves_ctrl_c_to_cgphw():
    """dask_jobqueue sets SIGINT to sys.exit() when imported; a PBS/SLURM campaign must keep
    Python's handler (KeyboardInterrupt: save, say "interrupted", exit 130)."""
    import subprocess
    import sys

    code = ("import signal; from cgphw.campaign.cluster import _jobqueue; before = signal.getsignal(signal.SIGINT); "
            "_jobqueue(); assert signal.getsignal(signal.SIGINT) is before is signal.default_int_handler")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
