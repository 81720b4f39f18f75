"""How the energy's curvature grows with training, and what it does to each solver.

    python benchmarks/curvature.py --data-dir DATA --json benchmarks/results/curvature_mnist.json

Trains the continual benchmark's network (784-400-400-10 ReLU, cross-entropy output) with
backprop (Adam 1e-3, batch 128) and, at initialisation and after 200 and 2,000 updates,
measures on one batch of 256 training images: `lambda_max` of the Hessian of the energy in
the free states (`pcastro.max_curvature`, 50 power iterations), and for `Euler(dt=0.02)`,
`Euler(dt=0.1)` and `AdaptiveEuler()` at T = 3 and 20 steps the status, the mean energy
and the cosine between PC's local weight gradient and backprop's, layer by layer. Also
`lambda_max` and the step `AdaptiveEuler` picks at more points of training, plotted as
`dt * lambda_max` (stable below 2) beside the JSON.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _common import environment, write_json  # noqa: E402

import pcastro as pc  # noqa: E402
from pcastro.baselines import backprop_loss, backprop_step  # noqa: E402
from pcastro.bench._continual import make_network  # noqa: E402
from pcastro.data import load_dataset  # noqa: E402


def cosines(net, state, x, y) -> list[float]:
    """Per weight matrix, the cosine between PC's gradient at `state` and backprop's."""
    pc_grads = jax.tree_util.tree_leaves(pc.param_grads(net, state))
    params, static = eqx.partition(net, eqx.is_inexact_array)
    bp = jax.grad(lambda p: backprop_loss(eqx.combine(p, static), x, y))(params)
    return [
        float(jnp.vdot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b) + 1e-30))
        for a, b in zip(pc_grads, jax.tree_util.tree_leaves(bp))
        if a.ndim == 2
    ]


TRACKED = (0, 50, 100, 200, 500, 1000, 1500, 2000)


def track(net, x, y) -> dict:
    """`lambda_max` over the batch and the step `AdaptiveEuler` chooses there."""
    state = pc.init_state(net, x, y)
    lam = float(pc.max_curvature(net, state, iterations=50).max())
    sol = pc.infer(net, state, solver=pc.AdaptiveEuler(), steps=1, throw=False)
    return {"lambda_max": lam, "adaptive_dt": float(sol.solver_state.dt[0])}


def plot(tracked: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    updates = [int(k) for k in tracked]
    lam = np.asarray([v["lambda_max"] for v in tracked.values()])
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for dt in (0.3, 0.1, 0.02):
        ax.plot(updates, dt * lam, marker="o", label=f"Euler(dt={dt})")
    adaptive = np.asarray([v["adaptive_dt"] for v in tracked.values()]) * lam
    ax.plot(updates, adaptive, marker="s", color="k", label="AdaptiveEuler()")
    ax.axhline(2.0, color="red", ls="--", lw=1)
    ax.text(updates[-1], 2.05, "unstable above", color="red", ha="right", va="bottom", fontsize=8)
    ax.set(xlabel="backprop updates", ylabel="dt * lambda_max", yscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def measure(net, x, y) -> dict:
    state = pc.init_state(net, x, y)
    lam = pc.max_curvature(net, state, iterations=50)
    rows = []
    for steps in (3, 20):
        for solver in (pc.Euler(dt=0.02), pc.Euler(dt=0.1), pc.AdaptiveEuler()):
            sol = pc.infer(net, state, solver=solver, steps=steps, throw=False)
            rows.append(
                {
                    "solver": repr(solver),
                    "steps": steps,
                    "status": pc.RESULTS(int(sol.status)).name,
                    "energy": float(sol.energy),
                    "cosine_with_backprop": cosines(net, sol.state, x, y),
                    "rejected": int(getattr(sol.solver_state, "rejected", 0)),
                }
            )
    return {
        "lambda_max": float(lam.max()),
        "lambda_median": float(jnp.median(lam)),
        "solves": rows,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ds = load_dataset("mnist", data_dir=args.data_dir)
    x, y = np.asarray(ds.x_train, np.float32), np.asarray(ds.y_train)
    rng = np.random.default_rng(args.seed)
    probe = rng.integers(0, len(x), 256)
    px, py = jnp.asarray(x[probe]), jnp.asarray(y[probe])
    net = make_network(jax.random.key(args.seed), [784, 400, 400, 10])
    opt = optax.adam(1e-3)
    opt_state = opt.init(eqx.filter(net, eqx.is_inexact_array))
    step = eqx.filter_jit(lambda n, s, a, b: backprop_step(n, s, a, b, optimizer=opt)[:2])
    points = {0: measure(net, px, py)}
    tracked = {0: track(net, px, py)}
    for it in range(1, 2001):
        idx = rng.integers(0, len(x), 128)
        net, opt_state = step(net, opt_state, jnp.asarray(x[idx]), jnp.asarray(y[idx]))
        if it in (200, 2000):
            points[it] = measure(net, px, py)
        if it in TRACKED:
            tracked[it] = track(net, px, py)
    for it, point in points.items():
        print(f"after {it} updates: lambda_max {point['lambda_max']:.1f}")
        for r in point["solves"]:
            cos = " / ".join(f"{c:.3f}" for c in r["cosine_with_backprop"])
            print(
                f"  T={r['steps']:2d} {r['solver']:24s} {r['status']:12s} {r['energy']:.4f} {cos}"
            )
    payload = {**environment(), "seed": args.seed, "updates": points, "tracked": tracked}
    if args.json:
        write_json(args.json, payload)
        plot(tracked, Path(args.json).with_suffix(".png"))
    return payload


if __name__ == "__main__":
    main()
