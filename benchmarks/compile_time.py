"""Cold compile time and step time of pcastro's time-to-accuracy training step.

Each repetition runs in a fresh process (nothing cached in memory; no persistent cache)
and splits the first call of the jitted step into its phases: tracing the Python
function to a jaxpr, lowering it to StableHLO and XLA's compilation, each in process CPU
seconds (robust to other jobs on the machine) and wall seconds. It then times the
compiled step (median and 10th percentile of `--steps` calls). The step is the one
`benchmarks/adapters/pcastro_lib.py` runs in time-to-accuracy mode, for the digits and
the MNIST workloads (random inputs of the workload's shape).

    python benchmarks/compile_time.py --json benchmarks/results/compile_time.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The adapters' `_common` (the workloads) and pcastro's adapter; the benchmark-wide
# `_common` (environment, write_json) has the same module name, so it is loaded by path.
sys.path.insert(0, str(HERE / "adapters"))


def _bench_common():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_common", HERE / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(workload: str, steps: int) -> dict:
    """One cold measurement in this process."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from _common import make_workload
    from pcastro_lib import TTA_SETTINGS

    import pcastro as pc

    spec = make_workload(workload)
    chosen = TTA_SETTINGS[workload]
    net = pc.mlp(
        list(spec.sizes),
        key=jax.random.key(0),
        activation=getattr(jax.nn, spec.activation),
        output_energy=pc.CrossEntropy(),
    )
    if chosen["cosine_epochs"]:
        # The schedule's length does not change the compiled program.
        epoch_steps = 60_000 // spec.batch
        schedule = optax.cosine_decay_schedule(
            chosen["lr"], chosen["cosine_epochs"] * epoch_steps, 0.1
        )
        optimizer = optax.adamw(schedule, weight_decay=1e-4)
    else:
        optimizer = optax.adam(chosen["lr"])
    params, static = eqx.partition(net, eqx.is_inexact_array)
    solver = pc.Euler(dt=chosen["dt"])

    def train(params, opt_state, x, y):
        model, opt_state, _ = pc.train_step(
            eqx.combine(params, static),
            opt_state,
            x,
            y,
            optimizer=optimizer,
            solver=solver,
            steps=chosen["steps"],
        )
        return eqx.filter(model, eqx.is_inexact_array), opt_state

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((spec.batch, spec.sizes[0]), dtype=np.float32))
    y = jax.nn.one_hot(jnp.asarray(rng.integers(0, 10, spec.batch)), spec.sizes[-1])
    opt_state = optimizer.init(params)
    step = jax.jit(train, donate_argnums=(0, 1))
    marks = [(time.process_time(), time.perf_counter())]
    traced = step.trace(params, opt_state, x, y)
    marks.append((time.process_time(), time.perf_counter()))
    lowered = traced.lower()
    marks.append((time.process_time(), time.perf_counter()))
    compiled = lowered.compile()
    marks.append((time.process_time(), time.perf_counter()))
    phases = {}
    for name, a, b in zip(("trace", "lower", "compile"), marks, marks[1:]):
        phases[f"{name}_cpu_s"] = b[0] - a[0]
        phases[f"{name}_wall_s"] = b[1] - a[1]
    for _ in range(10):
        params, opt_state = compiled(params, opt_state, x, y)
    jax.block_until_ready(params)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        params, opt_state = compiled(params, opt_state, x, y)
        jax.block_until_ready(params)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {
        **phases,
        "total_cpu_s": marks[-1][0] - marks[0][0],
        "total_wall_s": marks[-1][1] - marks[0][1],
        "step_ms_median": 1e3 * statistics.median(times),
        "step_ms_p10": 1e3 * times[len(times) // 10],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", default="digits,mnist")
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per workload")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per process")
    parser.add_argument("--json", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.steps)))
        return 0
    common = _bench_common()
    results = {}
    for workload in args.workloads.split(","):
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run(
                [sys.executable, __file__, "--one", workload, "--steps", str(args.steps)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        summary = {
            key: {
                "min": min(r[key] for r in runs),
                "median": statistics.median(r[key] for r in runs),
            }
            for key in runs[0]
        }
        results[workload] = {"summary": summary, "runs": runs}
        print(
            workload,
            " ".join(f"{k} {v['median']:.3f}" for k, v in summary.items() if "cpu" in k),
            f"step_ms_p10 {summary['step_ms_p10']['min']:.3f}",
            flush=True,
        )
    if args.json:
        import os

        import pcastro

        source = Path(pcastro.__file__).parent
        commit = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        common.write_json(
            args.json,
            {
                **common.environment(),
                "pcastro_commit": commit or None,
                "load_avg": list(os.getloadavg()),
                "config": vars(args),
                "results": results,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
