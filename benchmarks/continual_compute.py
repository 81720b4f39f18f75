"""Split-MNIST memory methods at equal bytes, placed by what their replay costs: final
accuracy against the floating-point operations spent on replay per training iteration.

    python benchmarks/continual_seeds.py benchmarks/results/continual_mnist_paper_m200
    python benchmarks/continual_compute.py benchmarks/results/continual_mnist_paper_m200 \\
        benchmarks/results/continual_mnist_paper_m200_resume \\
        --out benchmarks/results/continual_mnist_paper_compute

Each FOLDER holds a `summary.json` of `benchmarks/continual_seeds.py` (per-seed final
accuracies, replayed stimuli and inference steps per iteration, bytes per item). The
operations are measured, not estimated: XLA's cost analysis of the compiled steps of the
runs' own network (sizes, solver and inference steps from the summary's config), per
example, as the difference between a batch of 256 and one of 128 (so the parts that do not
grow with the batch, Adam's update among them, cancel):

- `fresh`: one PC training example: feedforward start, the rule's inference steps, its
  share of the local weight gradient (`pcastro.train_step`);
- `step`: one more inference step (`pcastro.infer` with k + 1 steps minus k);
- `relax`: a feedforward start and the rule's steps, no learning (a re-measured slot);
- `backprop`: one forward-backward example (`pcastro.baselines.backprop_step`).

Replay per iteration: backprop replay `R * backprop`; fresh PC replay (PC ER and the stores
replayed from a fresh start) `R * fresh`; resumed replay `R * (fresh - (steps - n) * step)`
(n steps from stored states instead of the feedforward start and the rule's steps; the
feedforward pass it skips is counted as spent, so its saving is understated); a store
re-measured every k iterations adds `capacity / k * relax`. Writes `compute.json`,
`compute.md` and `compute.png` (one panel per memory budget) into `--out`.
"""

import argparse
import json
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import pcastro
from pcastro.baselines import backprop_step
from pcastro.bench._config import make_solver
from pcastro.bench._continual import make_network

BATCH = 128
"""Per-example costs are the difference between batches of 2 * BATCH and BATCH."""


def _flops(fn, *args) -> float:
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


def per_example_flops(config: dict) -> dict:
    """Measured operations per example of the runs' network (see the module docstring)."""
    sizes = [784, *config["hidden"], 10]
    net = make_network(jax.random.key(0), sizes)
    solver = make_solver(argparse.Namespace(solver=config["solver"], dt=config["dt"]))
    steps = config["inference_steps"]
    optimizer = optax.adam(1e-3)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    opt_state = optimizer.init(params)

    def data(batch):
        return jnp.zeros((batch, sizes[0])), jax.nn.one_hot(jnp.arange(batch) % 10, 10)

    def pc_train(p, s, x, y):
        n = eqx.combine(p, static)
        n, s, _ = pcastro.train_step(
            n, s, x, y, optimizer=optimizer, solver=solver, steps=steps, throw=False
        )
        return eqx.filter(n, eqx.is_inexact_array), s  # all of the step's work is live

    def relax(k):
        def fn(p, x, y):
            n = eqx.combine(p, static)
            state = pcastro.init_state(n, x, y)
            return pcastro.infer(n, state, solver=solver, steps=k, throw=False).state.x

        return fn

    def bp(p, s, x, y):
        n, s, _ = backprop_step(eqx.combine(p, static), s, x, y, optimizer=optimizer)
        return eqx.filter(n, eqx.is_inexact_array), s

    def per_example(fn, *lead):
        return (_flops(fn, *lead, *data(2 * BATCH)) - _flops(fn, *lead, *data(BATCH))) / BATCH

    relaxed = per_example(relax(steps), params)  # compiled once, used twice below
    return {
        "fresh": per_example(pc_train, params, opt_state),
        "step": per_example(relax(steps + 1), params) - relaxed,
        "relax": relaxed,
        "backprop": per_example(bp, params, opt_state),
        "inference_steps": steps,
        "sizes": sizes,
    }


def replay_flops(method: dict, config: dict, cost: dict) -> float:
    """Operations spent on replay per iteration by one method of a summary."""
    name, replayed = method["method"], method["replayed_per_iteration"]
    if name.startswith("backprop"):
        return replayed * cost["backprop"]
    relaxed = method["relaxed_for_replay_per_iteration"]
    remeasured = relaxed - replayed  # slots re-measured per iteration (0 unless refreshed)
    per_replayed = cost["fresh"]
    if name == "pc_store_resume":
        per_replayed -= (cost["inference_steps"] - config.get("resume_steps", 1)) * cost["step"]
    return replayed * per_replayed + remeasured * cost["relax"]


def collect(folders: list[Path]) -> dict:
    rows, costs = [], {}
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        config = summary["config"]
        key = json.dumps([config["hidden"], config["solver"], config["dt"],
                          config["inference_steps"]])  # fmt: skip
        if key not in costs:
            costs[key] = per_example_flops(config)
        for m in summary["methods"].values():
            if m["budget"] is None:
                continue
            rows.append(
                {
                    "folder": folder.name,
                    "method": m["method"],
                    "budget": m["budget"],
                    "items": m["capacity"],
                    "bytes_per_item": m["bytes_per_item"],
                    "replayed_per_iteration": m["replayed_per_iteration"],
                    "inference_steps_for_replay_per_iteration": m[
                        "inference_steps_for_replay_per_iteration"
                    ],
                    "replay_gflops_per_iteration": replay_flops(m, config, costs[key]) / 1e9,
                    "mean": m["mean"],
                    "ci95": m["ci95"],
                    "n": m["n"],
                    "per_seed": m["per_seed"],
                }
            )
    return {"per_example_flops": list(costs.values()), "rows": rows}


def markdown(result: dict) -> str:
    lines = []
    for cost in result["per_example_flops"]:
        lines.append(
            f"Measured operations per example ({'-'.join(map(str, cost['sizes']))}, "
            f"{cost['inference_steps']} inference steps): PC training example "
            f"{cost['fresh'] / 1e6:.2f} MFLOP, one inference step {cost['step'] / 1e6:.2f}, "
            f"re-measuring a slot {cost['relax'] / 1e6:.2f}, backprop example "
            f"{cost['backprop'] / 1e6:.2f}."
        )
    raw = 784 * 4 + 4
    lines += [
        "",
        f"A raw exemplar (784 float32 pixels and its label) is {raw} bytes.",
        "",
        "| M | method | run | items | bytes/item | replay GFLOP / iteration | inference steps "
        "on replay / iteration | final acc (seeds) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(result["rows"], key=lambda r: (r["budget"], r["replay_gflops_per_iteration"])):
        lines.append(
            f"| {r['budget']} | {r['method']} | {r['folder']} | {r['items']} | "
            f"{r['bytes_per_item']:.0f} | {r['replay_gflops_per_iteration']:.2f} | "
            f"{r['inference_steps_for_replay_per_iteration']:.0f} | "
            f"{r['mean']:.3f} ± {r['ci95']:.3f} ({r['n']}) |"
        )
    return "\n".join(lines)


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({r["budget"] for r in result["rows"]})
    methods = list(dict.fromkeys(r["method"] for r in result["rows"]))
    markers = "osD^vP*Xh"
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4.4), squeeze=False)
    for ax, budget in zip(axes[0], budgets, strict=True):
        rows = [r for r in result["rows"] if r["budget"] == budget]
        span = max(r["replay_gflops_per_iteration"] for r in rows) or 1.0
        for r in rows:
            i = methods.index(r["method"])
            # Methods at the same compute are spread a little sideways to stay readable.
            x = r["replay_gflops_per_iteration"] + 0.004 * span * (i - len(methods) / 2)
            ax.errorbar(x, r["mean"], yerr=r["ci95"], fmt=markers[i % len(markers)],
                        color=f"C{i}", capsize=3,
                        label=f"{r['method']} ({r['items']} items, n={r['n']})")  # fmt: skip
        ax.set_xlabel("replay GFLOP per training iteration (measured)")
        ax.set_ylabel("final accuracy, 5 contexts (95% CI over seeds)")
        ax.set_title(f"memory budget M = {budget} exemplars' bytes")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="each holds a summary.json")
    parser.add_argument("--out", type=Path, required=True, help="folder for compute.*")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (folder / "summary.json").is_file():
            raise SystemExit(
                f"{folder} holds no summary.json: run `python benchmarks/continual_seeds.py "
                f"{folder}` first."
            )
    result = collect(args.folders)
    result["command"] = "python benchmarks/continual_compute.py " + " ".join(
        [*map(str, args.folders), "--out", str(args.out)]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compute.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / "compute.md").write_text(text + "\n")
    figure(result, args.out / "compute.png")
    print(text)
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
