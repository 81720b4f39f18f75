"""How the PC training step's cost grows with width, depth, batch, inference steps and the
number of vmapped independent networks — PC and backprop in the same process.

    python benchmarks/scaling.py --json benchmarks/results/scaling_cpu.json
    python benchmarks/scaling.py --preset gpu --dtype bfloat16 --json OUT.json
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/scaling.py \
        --sweeps devices --json benchmarks/results/scaling_devices_cpu.json

The `devices` sweep splits the batch over 1, 2, 4, 8 devices (`pcastro.shard`, parameters
replicated). On one CPU the virtual devices share the same cores, so there it measures
the overhead of sharding, not a speed-up; on several GPUs it measures the speed-up.

Each point is the median of `--repeats` timed calls after a warm-up (compile apart). The
fitted log-log slope of each sweep is printed and saved: 1.0 means linear growth.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _common import environment, time_calls, write_json  # noqa: E402

import pcastro as pc  # noqa: E402
from pcastro.baselines import backprop_step  # noqa: E402

PRESETS = {
    # Sized for a 2-core CPU (the whole sweep takes a few minutes).
    "cpu": {
        "width": [256, 512, 1024, 2048],
        "depth": [2, 4, 8, 16],
        "batch": [1, 16, 64, 256, 1024],
        "steps": [5, 10, 20, 50, 100],
        "networks": [1, 4, 16, 64],
        "devices": [1, 2, 4, 8],
    },
    "gpu": {
        "width": [1024, 2048, 4096, 8192],
        "depth": [2, 4, 8, 16],
        "batch": [1, 16, 64, 256, 1024],
        "steps": [5, 10, 20, 50, 100],
        "networks": [1, 4, 16, 64, 256],
        "devices": [1, 2, 4, 8],
    },
}
BASE = {"width": 256, "depth": 2, "batch": 256, "steps": 20, "networks": 1, "devices": 1}


def _steps(point, dtype, solver):
    sizes = [784] + [point["width"]] * point["depth"] + [10]
    keys = jax.random.split(jax.random.key(0), point["networks"])
    nets = eqx.filter_vmap(lambda k: pc.mlp(sizes, key=k, dtype=dtype))(keys)
    opt = optax.adam(1e-3)
    params, static = eqx.partition(nets, eqx.is_inexact_array)
    opt_state = jax.vmap(opt.init)(params)
    kx, ky = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (point["batch"], 784), dtype)
    y = jax.nn.one_hot(jax.random.randint(ky, (point["batch"],), 0, 10), 10, dtype=dtype)

    # Data parallelism: the batch split over the devices, the parameters replicated.
    mesh = pc.make_mesh(point["devices"])
    x, y = pc.shard((x, y), mesh)
    params, opt_state = pc.replicate((params, opt_state), mesh)

    def pc_one(p, s, x, y):
        net, s, _ = pc.train_step(
            eqx.combine(p, static), s, x, y, optimizer=opt, steps=point["steps"], solver=solver
        )
        return eqx.filter(net, eqx.is_inexact_array), s

    def bp_one(p, s, x, y):
        net, s, _ = backprop_step(eqx.combine(p, static), s, x, y, optimizer=opt)
        return eqx.filter(net, eqx.is_inexact_array), s

    def wrap(fn):
        stepped = jax.jit(jax.vmap(fn, in_axes=(0, 0, None, None)), donate_argnums=(0, 1))
        return lambda p, s: stepped(p, s, x, y)

    return wrap(pc_one), wrap(bp_one), params, opt_state


def _flops(point) -> float:
    """Matrix-product flops of one PC step: T x (forward + state backward) + weight update."""
    w, d, b, t, n = (point[k] for k in ("width", "depth", "batch", "steps", "networks"))
    layer = [784 * w] + [w * w] * (d - 1) + [w * 10]
    macs = sum(layer) * b
    return 2.0 * n * macs * (3 * t + 3)


def run(preset, *, sweeps, repeats, dtype, max_seconds, solver):
    rows = []
    for sweep in sweeps:
        for value in preset[sweep]:
            if sweep == "devices" and value > jax.device_count():
                print(f"  (devices={value} skipped: {jax.device_count()} available)")
                continue
            point = dict(BASE, **{sweep: value})
            t0 = time.perf_counter()
            pc_step, bp_step, params, opt_state = _steps(point, dtype, solver)
            copy = lambda t: jax.tree_util.tree_map(jnp.copy, t)
            pc_c, pc_s, _, _ = time_calls(pc_step, (copy(params), copy(opt_state)), repeats=repeats)
            bp_c, bp_s, _, _ = time_calls(bp_step, (copy(params), copy(opt_state)), repeats=repeats)
            row = {
                "sweep": sweep,
                **point,
                "dtype": str(dtype),
                "pc_ms": 1e3 * pc_s,
                "bp_ms": 1e3 * bp_s,
                "pc_over_bp": pc_s / bp_s,
                "pc_compile_s": pc_c,
                "bp_compile_s": bp_c,
                "pc_tflops": _flops(point) / pc_s / 1e12,
            }
            rows.append(row)
            print(
                f"{sweep:>9}={value:<6} pc {row['pc_ms']:9.3f} ms  bp {row['bp_ms']:8.3f} ms  "
                f"pc/bp {row['pc_over_bp']:6.2f}  {row['pc_tflops']:.3f} TFLOP/s",
                flush=True,
            )
            if time.perf_counter() - t0 > max_seconds:
                print(f"  ({sweep} sweep stopped: one point took over {max_seconds} s)")
                break
    return rows


def slopes(rows):
    out = {}
    for sweep in {r["sweep"] for r in rows}:
        pts = [r for r in rows if r["sweep"] == sweep]
        if len(pts) < 2:
            continue
        xs = np.log([r[sweep] for r in pts])
        for kind in ("pc_ms", "bp_ms"):
            ys = np.log([r[kind] for r in pts])
            out[f"{sweep}:{kind}"] = float(np.polyfit(xs, ys, 1)[0])
    return out


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = list(dict.fromkeys(r["sweep"] for r in rows))
    fig, axes = plt.subplots(1, len(sweeps), figsize=(3.4 * len(sweeps), 3.2), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        pts = [r for r in rows if r["sweep"] == sweep]
        xs = [r[sweep] for r in pts]
        ax.loglog(xs, [r["pc_ms"] for r in pts], "o-", label="PC (pcastro)")
        ax.loglog(xs, [r["bp_ms"] for r in pts], "s--", label="backprop")
        ax.set_xlabel(sweep)
        ax.set_ylabel("step time (ms)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--sweeps", default="width,depth,batch,steps,networks")
    parser.add_argument("--widths", default=None, help="override the width sweep, e.g. 1024,2048")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument(
        "--solver",
        choices=("euler", "adaptive"),
        default="euler",
        help="state solver of the PC step: Euler at --dt (the default, so the sweep times the"
        " step alone) or AdaptiveEuler (the library default, which adds a curvature probe)",
    )
    parser.add_argument("--dt", type=float, default=0.1, help="Euler's step (--solver euler)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    solver = pc.Euler(dt=args.dt) if args.solver == "euler" else pc.AdaptiveEuler()
    preset = dict(PRESETS[args.preset])
    if args.widths:
        preset["width"] = [int(w) for w in args.widths.split(",")]
    rows = run(
        preset,
        sweeps=args.sweeps.split(","),
        repeats=args.repeats,
        dtype=jnp.dtype(args.dtype),
        max_seconds=args.max_seconds,
        solver=solver,
    )
    fitted = slopes(rows)
    for k, v in sorted(fitted.items()):
        print(f"log-log slope {k}: {v:.2f}")
    record = {**environment(), "config": vars(args), "base": BASE, "rows": rows, "slopes": fitted}
    if args.json:
        write_json(args.json, record)
        plot(rows, Path(args.json).with_suffix(".png"))
    return record


if __name__ == "__main__":
    main()
