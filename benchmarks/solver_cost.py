"""Cost of the curvature-following solver against plain Euler, per training step.

    python benchmarks/solver_cost.py --sizes 784,400,400,10 --batch 256 --steps 3,20 \
        --repeats 20 --json benchmarks/results/solver_cost_cpu.json

In one process, after warm-up, the median wall time of a PC training step
(`pcastro.train_step`: T inference steps, one Adam update) with `pcastro.Euler(dt=0.1)`,
`pcastro.AdaptiveEuler()` (the default) and `AdaptiveEuler(backtrack=True)`, on the same
network, batch and data;
compile times apart. The steps are timed in alternation, so that drifts of a shared
machine fall on both alike.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from _common import block, environment, write_json  # noqa: E402
from throughput import pcastro_step  # noqa: E402

import pcastro as pc  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="784,400,400,10")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", default="3,20")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    key = jax.random.key(0)
    kx, ky, kn = jax.random.split(key, 3)
    x = jax.random.uniform(kx, (args.batch, sizes[0]))
    y = jax.nn.one_hot(jax.random.randint(ky, (args.batch,), 0, sizes[-1]), sizes[-1])
    net = pc.mlp(sizes, key=kn, activation=jax.nn.relu, output_energy=pc.CrossEntropy())
    optimizer = optax.adam(1e-3)
    solvers = {
        "euler": pc.Euler(dt=0.1),
        "adaptive": pc.AdaptiveEuler(),
        "adaptive_backtrack": pc.AdaptiveEuler(backtrack=True),
    }
    rows = []
    for steps in (int(s) for s in args.steps.split(",")):
        fns, states, compile_s, times = {}, {}, {}, {name: [] for name in solvers}
        for name, solver in solvers.items():
            fns[name], params = pcastro_step(
                net, optimizer, steps=steps, solver=solver, throw=False
            )
            params = jax.tree_util.tree_map(jnp.copy, params)  # the step donates them
            state = (params, optimizer.init(params), x, y)
            t0 = time.perf_counter()
            state = block(fns[name](*state))
            compile_s[name] = time.perf_counter() - t0
            states[name] = block(fns[name](*state))
        for _ in range(args.repeats):
            for name in solvers:
                t0 = time.perf_counter()
                states[name] = block(fns[name](*states[name]))
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(t) for name, t in times.items()}
        row = {
            "steps": steps,
            "median_ms": {n: 1e3 * v for n, v in med.items()},
            "compile_s": compile_s,
            "ratio_to_euler": {n: v / med["euler"] for n, v in med.items()},
            "times_ms": {n: [1e3 * v for v in t] for n, t in times.items()},
        }
        rows.append(row)
        print(
            f"T={steps:3d}  "
            + "  ".join(
                f"{n} {row['median_ms'][n]:.2f} ms (x{row['ratio_to_euler'][n]:.3f})"
                for n in solvers
            )
        )
    payload = {
        **environment(),
        "sizes": sizes,
        "batch": args.batch,
        "repeats": args.repeats,
        "solvers": {n: repr(s) for n, s in solvers.items()},
        "rows": rows,
    }
    if args.json:
        write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
