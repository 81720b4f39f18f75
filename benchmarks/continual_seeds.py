"""Split-MNIST across seeds: every memory method against its controls, paired per seed,
with a Holm correction over every comparison in the table.

    D=benchmarks/results/continual_mnist_paper_m200
    COMMON="--dataset mnist --seeds 10 --iterations 2000 --eval-every 100 --budgets 200"
    COMMON="$COMMON --lrs 0.001 --pc-lrs 0.001 --no-progress"
    pcastro continual $COMMON --methods backprop_er,backprop_per,pc_er,pc_store_uniform_lean \\
        --out $D/parts/replay
    pcastro continual $COMMON --methods pc_store_priority_lean --priority-alphas 0.5,1 \\
        --refresh-every 50 --out $D/parts/priority
    python benchmarks/continual_seeds.py $D

The parts are runs of `pcastro continual` on the same test seeds and the same settings
but for their methods (checked: a part that differs is refused, as it would not pair).
Each seed is a new initial network and data order, so the per-seed final accuracies of
two methods are paired. Every PC method is compared with PC experience replay (`pc_er`)
and backprop experience replay (`backprop_er`), the store variants also with uniform
replay from the same store (`pc_store_uniform_lean`), a backprop method with
`backprop_er`; each comparison gives the mean over seeds,
its 95% Student-t interval, the two-sided p-value of a one-sample t-test against 0 and
whether it survives Holm's step-down correction at 5% over all comparisons of the table.

Replay compute is counted per iteration, in stimuli relaxed for replay and their inference
steps (PC: a fresh replay runs `inference_steps` steps from a feedforward start, a resumed
one `resume_steps` from its stored states; a store re-measured every `refresh_every`
iterations relaxes every slot once more each time), and the memory in bytes per stored
stimulus. Failed solves and collapsed seeds are
counted per method, never dropped. Writes `summary.json` (every per-seed value) and
`summary.md` into the folder.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pcastro.bench._methods import current_names, method_names
from pcastro.bench._stats import across_seeds, holm, mean_ci95

CONTROLS = ("backprop_er", "pc_er", "pc_store_uniform_lean")
"""Each method is compared with the controls listed before it (a control with those
before it only); a backprop method with `backprop_er` alone, and `pc_store_uniform_lean`
is a control of the store variants alone."""
SAME_STORE = {"pc_store_resume": ("pc_store_uniform",)}
"""A store variant also compared with fresh uniform replay from a store of the same kind
(resumed replay needs a store with states: its control is that store replayed fresh)."""
# Settings that may differ between parts: what each part runs and how its grid is searched.
PER_PART = {"methods", "priority_alphas", "refresh_every", "gate_floors", "tols"}


def load_parts(folder: Path) -> list[dict]:
    """Every `results.json` under `folder` (its `parts/*` or the folder itself), former
    method names read as current ones; refuses parts that would not pair."""
    paths = sorted(folder.glob("parts/*/results.json")) or [folder / "results.json"]
    parts = [current_names(json.loads(p.read_text()), "continual") for p in paths]
    if not parts or not paths[0].is_file():
        raise SystemExit(f"{folder} holds no results.json (nor parts/*/results.json).")
    first = parts[0]
    for path, part in zip(paths, parts, strict=True):
        if part["details"]["test_seeds"] != first["details"]["test_seeds"]:
            raise SystemExit(f"{path}: its test seeds differ from {paths[0]}'s: not paired.")
        for key, value in part["config"].items():
            if key not in PER_PART and value != first["config"].get(key):
                raise SystemExit(
                    f"{path}: `{key}` is {value!r} against {first['config'].get(key)!r} in "
                    f"{paths[0]}: the runs would not pair."
                )
    for part, path in zip(parts, paths, strict=True):
        part["name"] = path.parent.name
    return parts


def replay_cost(row: dict, config: dict, selected: dict) -> dict:
    """Replay compute per iteration and memory per stored stimulus of one result row:
    stimuli relaxed for replay and the inference steps they take (a fresh replay runs
    `inference_steps` from a feedforward start, a resumed one `resume_steps` from its
    stored states; a re-measured store relaxes every slot once more each
    `refresh_every` iterations); backprop replays with one forward-backward pass each."""
    method, steps = row["method"], config["inference_steps"]
    replayed = config["replay_batch"] if row["budget"] is not None else 0
    relaxed = replayed if method.startswith("pc_") else 0
    per_item = config.get("resume_steps", 1) if method == "pc_store_resume" else steps
    inference = relaxed * per_item
    if method == "pc_store_priority_lean":
        extra = row["capacity"] / config["refresh_every"]
        relaxed, inference = relaxed + extra, inference + extra * steps
    return {
        "replayed_per_iteration": replayed,
        "relaxed_for_replay_per_iteration": relaxed,
        "inference_steps_for_replay_per_iteration": inference,
        "bytes_per_item": (row["memory_bytes"] / row["capacity"]) if row.get("capacity") else None,
        "selected": selected.get(method),
    }


def summarise(parts: list[dict]) -> dict:
    config = parts[0]["config"]
    rows, selected = {}, {}
    for part in parts:
        selected.update(part["details"]["selected"])
        for r in part["results"]:
            rows.setdefault((r["method"], r["budget"]), (r, part))
    methods = {}
    for (method, budget), (r, part) in rows.items():
        mean, ci, n = mean_ci95(r["per_seed"])
        methods[f"{method}@{budget}"] = {
            "method": method,
            "budget": budget,
            "part": part["name"],
            "mean": mean,
            "ci95": ci,
            "n": n,
            "per_seed": r["per_seed"],
            "capacity": r.get("capacity"),
            "memory_bytes": r.get("memory_bytes"),
            "collapsed_seeds": r["collapsed_seeds"],
            "failed_solves_per_seed": r["failed_per_seed"],
            "status_counts_per_seed": r["status_counts_per_seed"],
            "run_s": r["run_s"],
            **replay_cost(r, part["config"], part["details"]["selected"]),
        }
    comparisons = []
    order = method_names("continual")
    methods = dict(sorted(methods.items(), key=lambda kv: (order.index(kv[1]["method"]),
                                                           kv[1]["budget"] or 0)))  # fmt: skip
    for m in methods.values():
        rank = CONTROLS.index(m["method"]) if m["method"] in CONTROLS else len(CONTROLS)
        for control in (*CONTROLS[:rank], *SAME_STORE.get(m["method"], ())):
            ref = methods.get(f"{control}@{m['budget']}")
            if ref is None or m["budget"] is None:
                continue
            if control == "pc_store_uniform_lean" and not m["method"].startswith("pc_store"):
                continue
            if m["method"].startswith("backprop") and not control.startswith("backprop"):
                continue
            diffs = np.asarray(m["per_seed"]) - np.asarray(ref["per_seed"])
            comparisons.append(
                {"method": m["method"], "vs": control, "budget": m["budget"],
                 **across_seeds(diffs.tolist())}
            )  # fmt: skip
    for row, rejected in zip(comparisons, holm([r["p"] for r in comparisons]), strict=True):
        row["holm_5pct"] = rejected
    return {
        "parts": [p["name"] for p in parts],
        "commands": {p["name"]: p["command"] for p in parts},
        "test_seeds": parts[0]["details"]["test_seeds"],
        "config": {k: v for k, v in config.items() if k not in PER_PART},
        "methods": methods,
        "comparisons": comparisons,
    }


def markdown(summary: dict) -> str:
    seeds = len(summary["test_seeds"])
    lines = [
        f"Final accuracy after the 5 contexts, {seeds} seeds (interval over seeds); "
        f"{summary['config']['iterations']} iterations per context.",
        "",
        "| method | M | items | bytes/item | replayed / iteration | inference steps on "
        "replay / iteration | final acc | collapsed seeds | failed solves | per seed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in summary["methods"].values():
        per_item = "" if m["bytes_per_item"] is None else f"{m['bytes_per_item']:.0f}"
        lines.append(
            f"| {m['method']} | {m['budget'] or ''} | {m['capacity'] or ''} | {per_item} | "
            f"{m['replayed_per_iteration']} | "
            f"{m['inference_steps_for_replay_per_iteration']:.0f} | "
            f"{m['mean']:.3f} ± {m['ci95']:.3f} | "
            f"{m['collapsed_seeds']} | {sum(m['failed_solves_per_seed'])} | "
            + " ".join(f"{v:.3f}" for v in m["per_seed"])
            + " |"
        )
    n = len(summary["comparisons"])
    lines += [
        "",
        f"Paired differences (same seeds); Holm over all {n} comparisons.",
        "",
        "| method − control | M | diff ± 95% CI (seeds) | p | Holm 5% | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["comparisons"]:
        per_seed = " ".join(f"{v:+.3f}" for v in r["per_seed"])
        lines.append(
            f"| {r['method']} − {r['vs']} | {r['budget']} | {r['diff']:+.3f} ± {r['ci95']:.3f} "
            f"| {r['p']:.3g} | {'yes' if r['holm_5pct'] else 'no'} | {per_seed} |"
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="holds parts/*/results.json")
    args = parser.parse_args(argv)
    summary = summarise(load_parts(args.folder))
    (args.folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = markdown(summary)
    (args.folder / "summary.md").write_text(text + "\n")
    print(text)
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
