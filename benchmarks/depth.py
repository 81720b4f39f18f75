"""Depth: residual MLPs of 8 to 128 layers trained by standard PC, μPC and backprop.

    python benchmarks/depth.py --data-dir DATA --out benchmarks/results/depth_mnist

The network is the μPC paper's (Innocenti, Achour & Buckley, NeurIPS 2025): a ReLU
residual MLP of width 128 with an identity skip around every hidden layer but the first
(`pcastro.residual_mlp`), a Gaussian (squared-error) output on one-hot labels, batch 64,
inference for as many Euler steps as the network has layers (`--solver adaptive`: the
steps of `pcastro.AdaptiveEuler`, no step size to tune), Adam on the weights. Methods,
each on the same modules, the same initial weights and the same batches:

- `pc_mupc`: PC with the μPC parametrisation (`pcastro.MuPC`);
- `pc_sp`: PC with the standard parametrisation (`pcastro.Standard`) on the same graph;
- `bp_mupc` and `bp_sp`: backprop on the same two networks.

Learning rates and inference step sizes are selected on a validation split (the last
`--val` training images) at the shallowest depth, over `--tune-iters` iterations, and
then used at every depth: μPC's claim is that they transfer; for the standard
parametrisation the same rule is applied, and the note says what that costs it.
Test accuracy (the official 10,000 test images, feedforward prediction) is recorded every
`--eval-every` iterations; wall time per run, compile apart.
"""

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _common import environment, write_json  # noqa: E402

import pcastro as pc  # noqa: E402
from pcastro.baselines import backprop_step  # noqa: E402
from pcastro.bench._stats import mean_ci95  # noqa: E402

METHODS = {
    "pc_mupc": ("pc", pc.MuPC()),
    "pc_sp": ("pc", pc.Standard()),
    "bp_mupc": ("bp", pc.MuPC()),
    "bp_sp": ("bp", pc.Standard()),
}
GRID = {
    "pc": {"lr": [1e-3, 1e-2, 1e-1], "dt_per_batch": [0.5, 2.0, 8.0, 32.0]},
    "bp": {"lr": [1e-4, 1e-3, 1e-2, 1e-1]},
}


def load(args):
    name = args.dataset
    try:
        ds = pc.data.load_dataset(name, data_dir=args.data_dir)
    except (FileNotFoundError, ValueError) as err:
        if name != "mnist":
            raise
        print(f"Full MNIST not found ({err}); falling back to the embedded mnist5k.")
        ds = pc.data.load_dataset("mnist5k")
    mean, std = ds.x_train.mean(), ds.x_train.std()
    x_train = (ds.x_train - mean) / std
    x_test = (ds.x_test - mean) / std
    return ds.name, x_train, ds.y_train, x_test, ds.y_test


def batches(n: int, iters: int, batch: int, seed: int) -> np.ndarray:
    """`(iters, batch)` indices: reshuffled epochs, the same for every method of a seed."""
    rng = np.random.default_rng(seed)
    epochs = -(-iters * batch // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return order[: iters * batch].reshape(iters, batch)


def train(method, depth, hp, data, *, width, iters, batch, eval_every, seed):
    """Train one network; returns test accuracy every `eval_every` iterations and times."""
    kind, param = METHODS[method]
    x_train, y_train, x_eval, y_eval = data
    net = pc.residual_mlp(
        in_size=x_train.shape[1],
        width=width,
        depth=depth,
        out_size=10,
        key=jax.random.key(seed),
        parametrisation=param,
    )
    opt = optax.adam(hp["lr"])
    opt_state = opt.init(eqx.filter(net, eqx.is_inexact_array))
    targets = np.eye(10, dtype=np.float32)[y_train]
    if hp.get("solver") == "adaptive":  # the step from the measured curvature
        solver = pc.AdaptiveEuler()
    else:
        solver = pc.Euler(dt=hp.get("dt_per_batch", 0.5) / batch)

    @eqx.filter_jit
    def run_chunk(net, opt_state, xb, yb):
        params, static = eqx.partition(net, eqx.is_inexact_array)

        def body(carry, b):
            net = eqx.combine(carry[0], static)
            if kind == "pc":
                net, st, info = pc.train_step(
                    net,
                    carry[1],
                    b[0],
                    b[1],
                    optimizer=opt,
                    solver=solver,
                    steps=depth,
                    throw=False,
                )
                finite = (info.status != pc.RESULTS.nonfinite) & (
                    info.status != pc.RESULTS.nonfinite_update
                )
                flagged = info.status != pc.RESULTS.successful
            else:
                net, st, loss = backprop_step(net, carry[1], b[0], b[1], optimizer=opt)
                finite = jnp.isfinite(loss)
                flagged = ~finite
            return (eqx.filter(net, eqx.is_inexact_array), st), (finite, flagged)

        (params, opt_state), (finite, flagged) = jax.lax.scan(body, (params, opt_state), (xb, yb))
        return eqx.combine(params, static), opt_state, jnp.all(finite), jnp.sum(flagged)

    order = batches(len(x_train), iters, batch, seed)
    curve, compile_s, run_s, failed_at, flagged = [], 0.0, 0.0, None, 0
    for start in range(0, iters, eval_every):
        idx = order[start : start + eval_every]
        t0 = time.perf_counter()
        if start == 0:  # compile apart: time the first chunk's compilation separately
            lowered = run_chunk.lower(net, opt_state, x_train[idx], targets[idx])
            lowered.compile()
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
        net, opt_state, ok, bad = run_chunk(net, opt_state, x_train[idx], targets[idx])
        flagged += int(bad)
        jax.block_until_ready(net)
        run_s += time.perf_counter() - t0
        acc = float(pc.accuracy(net, x_eval, y_eval))
        curve.append((start + len(idx), acc))
        if not bool(ok) and failed_at is None:
            failed_at = start + len(idx)
        if failed_at is not None or not np.isfinite(acc):
            break  # non-finite: the remaining iterations would only propagate NaNs
    # `flagged`: steps whose inference or update status was not `successful` (an energy
    # that rose during inference, an update larger than the weights); they are counted,
    # not stopped on.
    return {
        "curve": curve,
        "compile_s": compile_s,
        "run_s": run_s,
        "failed_at": failed_at,
        "flagged_steps": flagged,
    }


def tune(method, depth, data, args):
    kind = METHODS[method][0]
    grid = GRID[kind]
    if kind == "pc" and args.solver == "adaptive":  # no step size to tune
        grid = {"lr": grid["lr"], "solver": ["adaptive"]}
    scores = []
    for values in itertools.product(*grid.values()):
        hp = dict(zip(grid, values))
        out = train(
            method,
            depth,
            hp,
            data,
            width=args.width,
            iters=args.tune_iters,
            batch=args.batch,
            eval_every=args.tune_iters,
            seed=10_000,
        )
        acc = out["curve"][-1][1]
        scores.append({"hp": hp, "val_accuracy": acc})
        print(f"  tune {method} {hp}: val {acc:.3f}", flush=True)
    best = max(scores, key=lambda s: s["val_accuracy"])
    return best["hp"], scores


def summarise(runs, methods, depths):
    table = []
    for depth in depths:
        row = {"depth": depth}
        finals = {}
        for m in methods:
            # a diverged run keeps its last measured accuracy (its NaN weights predict
            # one class, about chance)
            vals = [r["curve"][-1][1] for r in runs if r["method"] == m and r["depth"] == depth]
            if vals:
                mean, ci, n = mean_ci95(vals)
                row[m] = {"mean": mean, "ci95": ci, "seeds": n}
                finals[m] = vals
        for a, b in (("pc_mupc", "pc_sp"), ("pc_mupc", "bp_mupc")):
            if a in finals and b in finals and len(finals[a]) == len(finals[b]):
                diff = np.array(finals[a]) - np.array(finals[b])
                mean, ci, n = mean_ci95(diff)
                row[f"{a}-{b}"] = {"mean": mean, "ci95": ci, "seeds": n}
        table.append(row)
    return table


def ran(runs, depth) -> tuple[list[int], int]:
    """The iterations the runs at `depth` actually ran (the last point of each curve, one
    entry per distinct count) and how many seeds ran there."""
    at = [r for r in runs if r["depth"] == depth]
    return sorted({r["curve"][-1][0] for r in at}), len({r["seed"] for r in at})


def plot(payload, path):
    """`depth.png`: final test accuracy against depth, then the curves of the first seed
    at each depth; every title from the runs themselves (iterations, seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = payload["depths"]
    runs = payload["runs"]
    fig, axes = plt.subplots(
        1, len(depths) + 1, figsize=(4 * (len(depths) + 1) + 1, 3.9), layout="constrained",
        width_ratios=[1.3] + [1] * len(depths),
    )  # fmt: skip
    for m in payload["methods"]:
        means = [row[m]["mean"] if m in row else np.nan for row in payload["table"]]
        cis = [row[m]["ci95"] if m in row else 0 for row in payload["table"]]
        axes[0].errorbar(depths, means, yerr=np.nan_to_num(cis), marker="o", label=m, capsize=3)
    counts = {d: ran(runs, d) for d in depths}
    # The iterations most depths ran, and the depths that ran other counts.
    usual = Counter(tuple(its) for its, _ in counts.values()).most_common(1)[0][0]
    other = [f"depth {d}: {'/'.join(map(str, its))}" for d, (its, _) in counts.items()
             if tuple(its) != usual]  # fmt: skip
    when = f"after {'/'.join(map(str, usual))} iterations" + (
        f" ({', '.join(other)})" if other else ""
    )
    axes[0].set(
        xscale="log",
        xlabel="depth (weight layers), seeds",
        ylabel="test accuracy (mean, 95% CI over seeds)",
        ylim=(0, 1),
    )
    axes[0].set_title(f"final test accuracy\n{when}", fontsize=10)
    labels = [f"{d}\n{n} seed{'s' * (n > 1)}" for d, (_, n) in counts.items()]
    axes[0].set_xticks(depths, labels)
    axes[0].minorticks_off()
    axes[0].tick_params(labelsize=8)
    axes[0].legend(fontsize=8)
    for ax, depth in zip(axes[1:], depths):
        seed = min(r["seed"] for r in runs if r["depth"] == depth)
        for m in payload["methods"]:
            for r in runs:
                if r["method"] == m and r["depth"] == depth and r["seed"] == seed:
                    it, acc = zip(*r["curve"])
                    ax.plot(it, acc, label=m)
        its, _ = counts[depth]
        ax.set(
            xlabel="iteration",
            title=f"depth {depth}: seed {seed}, {'/'.join(map(str, its))} iterations",
            ylim=(0, 1),
        )
    fig.suptitle(
        f"residual MLPs of width {payload['width']} on {payload['dataset']}, batch "
        f"{payload['batch']}: PC and backprop, μPC and standard parametrisation",
        fontsize=10,
    )
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    plt.close(fig)


def accuracy_at(runs, method, depth, iteration):
    """Test accuracies (one per seed) of `method` at `depth` after `iteration` iterations."""
    out = []
    for r in runs:
        if r["method"] == method and r["depth"] == depth:
            hits = [acc for it, acc in r["curve"] if it == iteration]
            if hits:
                out.append(hits[0])
    return out


def markdown_table(payload, iterations=(300, 900)) -> str:
    """Test accuracy (mean ± 95% CI over seeds, or one seed) at each depth, after each of
    `iterations`, one column per method."""
    methods = payload["methods"]
    lines = [
        "| depth | iterations | " + " | ".join(methods) + " | seeds |",
        "|---|---|" + "---|" * len(methods) + "---|",
    ]
    for depth in payload["depths"]:
        for it in iterations:
            cells, seeds = [], 0
            for m in methods:
                vals = accuracy_at(payload["runs"], m, depth, it)
                seeds = max(seeds, len(vals))
                if not vals:
                    cells.append("—")
                elif len(vals) == 1:
                    cells.append(f"{vals[0]:.3f}")
                else:
                    mean, ci, _ = mean_ci95(vals)
                    cells.append(f"{mean:.3f} ± {ci:.3f}")
            if seeds:
                lines.append(f"| {depth} | {it} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines)


def merge(paths, out: Path):
    """One results file and figure from runs recorded in several (same settings)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    payload = dict(parts[0])
    payload["runs"] = [r for part in parts for r in part["runs"]]
    payload["depths"] = sorted({r["depth"] for r in payload["runs"]})
    payload["wall_s"] = sum(part.get("wall_s", 0.0) for part in parts)
    payload["merged_from"] = [part["environment"]["command"] for part in parts]
    payload["table"] = summarise(payload["runs"], payload["methods"], payload["depths"])
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", payload)
    plot(payload, out / "depth.png")
    print(markdown_table(payload))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion", "mnist5k", "digits"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--depths", type=int, nargs="+", default=[8, 32, 64, 128])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=900)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds run from this one on")
    p.add_argument(
        "--one-seed-from",
        type=int,
        default=64,
        help="depths at or above this run one seed (CPU budget)",
    )
    p.add_argument(
        "--solver",
        default="euler",
        choices=["euler", "adaptive"],
        help="PC inference: Euler with the tuned step (the recorded runs) or AdaptiveEuler",
    )
    p.add_argument("--val", type=int, default=5000, help="validation images for tuning")
    p.add_argument("--tune-iters", type=int, default=200)
    p.add_argument(
        "--hp-from",
        default=None,
        help="reuse the settings selected in this results.json (skip tuning)",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="combine the runs of these results.json files into --out",
    )
    p.add_argument("--out", default="benchmarks/results/depth_mnist")
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out))

    name, x_train, y_train, x_test, y_test = load(args)
    if args.val >= len(x_train) // 2:
        raise SystemExit(f"--val {args.val} leaves too few training images ({len(x_train)}).")
    fit = (x_train[: -args.val], y_train[: -args.val])
    val = (x_train[-args.val :], y_train[-args.val :])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "depth",
        "dataset": name,
        "width": args.width,
        "batch": args.batch,
        "iters": args.iters,
        "depths": args.depths,
        "methods": args.methods,
        "environment": environment(),
        "tuning": {},
        "selected": {},
        "runs": [],
    }
    t_start = time.perf_counter()
    tune_depth = min(args.depths)
    if args.hp_from:
        previous = json.loads(Path(args.hp_from).read_text())
        payload["selected"] = {m: previous["selected"][m] for m in args.methods}
        payload["tuning"] = {m: previous["tuning"][m] for m in args.methods}
        payload["tuned_at_depth"] = previous["tuned_at_depth"]
    else:
        payload["tuned_at_depth"] = tune_depth
    for m in args.methods if not args.hp_from else []:
        print(f"tuning {m} at depth {tune_depth} on {args.val} validation images", flush=True)
        hp, scores = tune(m, tune_depth, (*fit, *val), args)
        payload["selected"][m], payload["tuning"][m] = hp, scores
        write_json(out / "results.json", payload)
    for depth in args.depths:
        seeds = 1 if depth >= args.one_seed_from else args.seeds
        for seed in range(args.first_seed, args.first_seed + seeds):
            for m in args.methods:
                r = train(
                    m,
                    depth,
                    payload["selected"][m],
                    (*fit, x_test, y_test),
                    width=args.width,
                    iters=args.iters,
                    batch=args.batch,
                    eval_every=args.eval_every,
                    seed=seed,
                )
                r.update(method=m, depth=depth, seed=seed)
                payload["runs"].append(r)
                print(
                    f"depth {depth} seed {seed} {m}: test {r['curve'][-1][1]:.4f} "
                    f"({r['run_s']:.0f} s + {r['compile_s']:.0f} s compile)"
                    + (f", non-finite at {r['failed_at']}" if r["failed_at"] else "")
                    + f", {r['flagged_steps']} flagged steps",
                    flush=True,
                )
                payload["table"] = summarise(payload["runs"], args.methods, args.depths)
                payload["wall_s"] = time.perf_counter() - t_start
                write_json(out / "results.json", payload)
    plot(payload, out / "depth.png")
    print(
        f"wrote {out / 'results.json'} and {out / 'depth.png'} in {payload['wall_s'] / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
