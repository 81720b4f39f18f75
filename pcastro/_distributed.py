"""One run over many processes (one per host, or one per GPU) joined by `jax.distributed`.

Every process runs the same program. After `jax.distributed.initialize`, `jax.devices()`
lists the devices of every process, so the mesh of [`pcastro.make_mesh`][] spans them all
and `jax.jit` runs each process's share of the mapped episodes or seeds on its own
devices. Nothing here imports JAX until a run really spans processes.
"""

import os
from collections.abc import Mapping

# The variables by which JAX's own cluster detection recognises a launcher and reads the
# coordinator, process count and rank: a SLURM job step (`srun`; a batch script itself
# has no SLURM_STEP_NODELIST) and an Open MPI job (`mpirun` with ORTE, Open MPI < 5).
_LAUNCHERS = {
    "SLURM (srun)": (
        ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_LOCALID"),
        "SLURM_NTASKS",
    ),
    "Open MPI (mpirun)": (
        ("OMPI_MCA_orte_hnp_uri", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),
        "OMPI_COMM_WORLD_SIZE",
    ),
}


def cluster_launcher(environ: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """The launcher that started this process as one of several, and how many processes
    it started: `("SLURM (srun)", 4)`. None outside a launcher, or for a single task.

    **Arguments:**

    - `environ`: the environment to read (default `os.environ`).
    """
    environ = os.environ if environ is None else environ
    for name, (required, count) in _LAUNCHERS.items():
        if all(v in environ for v in (*required, count)):
            tasks = environ[count]
            if tasks.isdigit() and int(tasks) > 1:
                return name, int(tasks)
    return None


def check_process_options(
    coordinator: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Check the explicit options of a multi-process run before anything starts.

    **Raises:**

    `ValueError` naming the option that is missing or out of range: more than one
    process needs all three of `coordinator` (`HOST:PORT`), `num_processes` and
    `process_id` (from 0 to `num_processes - 1`); one process needs neither of the others.
    """
    given = {
        "--coordinator": coordinator,
        "--num-processes": num_processes,
        "--process-id": process_id,
    }
    if num_processes is None:
        stray = [flag for flag, v in given.items() if v is not None]
        if stray:
            raise ValueError(
                f"{' and '.join(stray)} need --num-processes N: give --coordinator HOST:PORT, "
                "--num-processes N and --process-id I together (the same coordinator and N "
                "in every process, I from 0 to N-1)."
            )
        return
    if num_processes < 1:
        raise ValueError(f"--num-processes must be 1 or more, got {num_processes}.")
    if num_processes == 1:
        if coordinator is not None or process_id not in (None, 0):
            raise ValueError(
                "--num-processes 1 runs alone: drop --coordinator and --process-id, or "
                "give the number of processes that take part."
            )
        return
    missing = [flag for flag, v in given.items() if v is None]
    if missing:
        raise ValueError(
            f"--num-processes {num_processes} also needs {' and '.join(missing)}: every "
            "process gives the same --coordinator HOST:PORT (an address of process 0's host "
            "and a free port) and its own --process-id from 0 to "
            f"{num_processes - 1}."
        )
    assert coordinator is not None and process_id is not None  # none is missing
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"--coordinator must be HOST:PORT (process 0's host and a free port), got "
            f"{coordinator!r}."
        )
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"--process-id must be from 0 to {num_processes - 1} (--num-processes "
            f"{num_processes}), got {process_id}."
        )


def start_processes(
    *,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> int:
    """Join this process to the others of a multi-process run, before any JAX computation.

    - With `num_processes` above 1, `jax.distributed.initialize` gets the three options.
    - With none of them, under a launcher that started several processes
      (`cluster_launcher`: SLURM's `srun`, Open MPI's `mpirun`),
      `jax.distributed.initialize()` reads them from the launcher's environment. Under
      SLURM, JAX then gives each process the one GPU of its local rank: launch one task
      per GPU.
    - Otherwise (or with `num_processes=1`, which keeps a launched task on its own) the
      run is this one process and nothing is started.

    **Arguments:**

    - `coordinator`: `HOST:PORT` of process 0, the same in every process.
    - `num_processes`: how many processes take part.
    - `process_id`: this process's rank, from 0 to `num_processes - 1`.

    **Returns:**

    The number of processes in the run.

    **Raises:**

    `ValueError` from `check_process_options`.
    """
    check_process_options(coordinator, num_processes, process_id)
    if num_processes == 1:
        return 1
    if num_processes is None and cluster_launcher() is None:
        return 1
    import jax

    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
    return jax.process_count()
