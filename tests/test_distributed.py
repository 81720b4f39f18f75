"""The benchmark commands over several processes (`jax.distributed`): two CPU processes on
this machine give the per-episode values of one process; only process 0 prints and writes.

Each run is a fresh interpreter: the devices and processes are fixed when JAX starts.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pcastro._distributed import check_process_options, cluster_launcher, start_processes
from pcastro.cli import main

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds for one launch; a hung collective must not hang the suite

ONESHOT = [
    "oneshot", "--episodes", "5", "--val-episodes", "3", "--queries", "2",
    "--inference-steps", "2", "--lrs", "0.01", "--max-updates", "2", "--astro-rounds", "1",
    "--methods", "pc,proto_cos", "--no-progress", "--no-compilation-cache",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_"))}
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {
        **env,
        "PYTHONPATH": pythonpath,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        **extra,
    }


def _launch(commands: list[tuple[list[str], dict, Path]]) -> list[tuple[int, str, str]]:
    """Start every `(argv, env, cwd)` at once as `python -m pcastro.cli argv`; wait for all
    (at most TIMEOUT seconds each); `(exit status, stdout, stderr)` of each. Whatever
    still runs at the end is killed."""
    procs = []
    try:
        for argv, env, cwd in commands:
            cwd.mkdir(parents=True, exist_ok=True)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "pcastro.cli", *argv],
                    cwd=cwd,
                    env=env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        outputs = [p.communicate(timeout=TIMEOUT) for p in procs]
        return [(p.returncode, *out) for p, out in zip(procs, outputs)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def _two_processes(argv: list[str], tmp_path: Path, *, devices: int = 2, slurm: bool = False):
    """`argv` in two processes, each with `devices` CPU devices and its own working folder
    (`tmp_path/p0`, `tmp_path/p1`): joined by the three options, or (`slurm`) by the
    environment SLURM's srun gives its tasks."""
    port = _free_port()
    commands = []
    for rank in (0, 1):
        if slurm:
            extra = {
                "SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "2",
                "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
                "JAX_COORDINATOR_PORT": str(port),
            }  # fmt: skip
            options = []
        else:
            extra = {}
            options = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
            options += ["--process-id", str(rank)]
        commands.append(([*argv, *options], _env(devices, **extra), tmp_path / f"p{rank}"))
    return _launch(commands)


@pytest.mark.slow
def test_two_processes_give_the_values_of_one_and_only_process_0_writes(tmp_path):
    # Two processes of two devices each: 5 episodes are 2 on each of the 4 devices (3
    # padded), against one process with one device.
    argv = [*ONESHOT, "--out", "run"]
    [(code, _, stderr)] = _launch([(argv, _env(1), tmp_path / "one")])
    assert code == 0, stderr[-3000:]
    reference = json.loads((tmp_path / "one" / "run" / "results.json").read_text())

    (code0, out0, err0), (code1, out1, err1) = _two_processes(argv, tmp_path)
    assert code0 == 0, err0[-3000:]
    assert code1 == 0, err1[-3000:]
    # Process 0 prints the table and writes the results; process 1 writes nothing and
    # prints nothing (its working folder stays empty although it was given `--out run`).
    assert "one-shot on digits" in out0 and "wrote run/results.json" in out0
    assert (out1, err1) == ("", "")
    assert list((tmp_path / "p1").iterdir()) == []
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("results.json")] == [
        Path("one/run/results.json"),
        Path("p0/run/results.json"),
    ]
    payload = json.loads((tmp_path / "p0" / "run" / "results.json").read_text())
    assert (payload["processes"], payload["devices"]) == (2, 4)
    assert (reference["processes"], reference["devices"]) == (1, 1)
    assert {t["devices"] for t in payload["details"]["timing"].values()} == {4}
    # The same episodes give the same per-episode values and the same selections.
    methods = [r["method"] for r in reference["results"]]
    assert {"pc", "proto_cos", "pixel_nn"} <= set(methods)
    assert [r["method"] for r in payload["results"]] == methods
    for mine, theirs in zip(payload["results"], reference["results"]):
        assert len(mine["values"]) == 5
        assert mine["values"] == pytest.approx(theirs["values"], abs=1e-6), mine["method"]
    assert payload["details"]["selected"].keys() == reference["details"]["selected"].keys()
    for method, chosen in reference["details"]["selected"].items():
        mine = payload["details"]["selected"][method]
        assert mine.pop("at_edge") == chosen.pop("at_edge"), method
        assert mine == pytest.approx(chosen, abs=1e-6), method


@pytest.mark.slow
def test_under_srun_a_refused_folder_stops_every_process(tmp_path):
    # The tasks of `srun` join with no options (JAX reads SLURM's environment). Only
    # process 0 looks at the output folder; when it refuses it (an earlier run there),
    # process 1, whose own folder is free, stops too instead of waiting for it forever.
    earlier = tmp_path / "p0" / "run"
    earlier.mkdir(parents=True)
    (earlier / "results.json").write_text('{"date": "2026-01-01 00:00:00 UTC"}')
    (code0, out0, err0), (code1, out1, err1) = _two_processes(
        [*ONESHOT, "--out", "run"], tmp_path, devices=1, slurm=True
    )
    assert (code0, code1) == (2, 2), err0[-3000:] + err1[-3000:]
    assert "already holds the results of an earlier run" in err0
    assert "process 0 refused the output folder" in err1
    assert out1 == "" and list((tmp_path / "p1").iterdir()) == []


@pytest.mark.slow
def test_devices_must_include_every_process(tmp_path):
    (code0, _, err0), (code1, _, err1) = _two_processes(
        [*ONESHOT, "--devices", "2", "--out", "run"], tmp_path
    )
    assert (code0, code1) == (2, 2)
    for err in (err0, err1):
        assert "would leave out devices of some of the 2 processes" in err
        assert "omit `--devices`" in err


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"num_processes": 2}, "also needs --coordinator and --process-id"),
        ({"num_processes": 2, "process_id": 0}, "also needs --coordinator"),
        ({"coordinator": "h:1", "process_id": 0}, "need --num-processes N"),
        ({"num_processes": 0}, "must be 1 or more"),
        ({"num_processes": 1, "coordinator": "h:1"}, "--num-processes 1 runs alone"),
        ({"num_processes": 2, "coordinator": "h", "process_id": 0}, "must be HOST:PORT"),
        ({"num_processes": 2, "coordinator": "h:1", "process_id": 2}, "from 0 to 1"),
    ],
)
def test_process_options_say_what_is_wrong(options, match):
    given = {"coordinator": None, "num_processes": None, "process_id": None, **options}
    with pytest.raises(ValueError, match=match):
        check_process_options(**given)


def test_a_bad_process_option_is_refused_by_the_command(capsys):
    assert main(["oneshot", "--num-processes", "2", "--no-progress"]) == 2
    assert "also needs --coordinator and --process-id" in capsys.readouterr().err


SRUN = {
    "SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_NTASKS": "8",
    "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
}  # fmt: skip


def test_the_launchers_that_start_several_processes_are_recognised():
    assert cluster_launcher(SRUN) == ("SLURM (srun)", 8)
    # A batch script itself (no job step) and a one-task step are one process.
    batch = {k: v for k, v in SRUN.items() if k != "SLURM_STEP_NODELIST"}
    assert cluster_launcher(batch) is None
    assert cluster_launcher({**SRUN, "SLURM_NTASKS": "1"}) is None
    mpirun = {
        "OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:4000", "OMPI_COMM_WORLD_SIZE": "2",
        "OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
    }  # fmt: skip
    assert cluster_launcher(mpirun) == ("Open MPI (mpirun)", 2)
    assert cluster_launcher({}) is None


def test_one_process_starts_nothing(monkeypatch):
    # `--num-processes 1` keeps a task of srun on its own; outside a launcher, nothing
    # to join. Neither calls jax.distributed.initialize (it would wait for peers).
    for k in os.environ:
        if k.startswith(("SLURM_", "OMPI_")):
            monkeypatch.delenv(k)
    assert start_processes() == 1
    for k, v in SRUN.items():
        monkeypatch.setenv(k, v)
    assert start_processes(num_processes=1) == 1
