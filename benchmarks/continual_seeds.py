"""Split-MNIST across seeds: every memory method against its controls, paired per seed,
with a Holm correction over every comparison in the table.

    D=benchmarks/results/continual_mnist_paper_m200
    COMMON="--dataset mnist --seeds 10 --iterations 2000 --eval-every 100 --budgets 200"
    COMMON="$COMMON --lrs 0.001 --pc-lrs 0.001 --no-progress"
    pcastro continual $COMMON --methods backprop_er,backprop_per,pc_er,pc_store_uniform_lean \\
        --out $D/parts/replay
    pcastro continual $COMMON --methods pc_store_priority_lean --priority-alphas 0.5,1 \\
        --refresh-every 50 --out $D/parts/priority
    pcastro continual $COMMON --methods pc_store_gate_example_lean --gate-floors 0,0.5,0.9 \\
        --out $D/parts/gate_example
    python benchmarks/continual_seeds.py $D

The parts are runs of `pcastro continual` with the same settings but for their methods
and their block of test seeds (checked: a part that differs otherwise, or selects a
method's hyperparameters differently, is refused, as it would not pair). More seeds are
a further block of parts: the same commands with `--first-test-seed 10` (the first block's
`--seeds`) and their own `--out`; a method's blocks are joined seed by seed.
Each seed is a new initial network and data order, so the per-seed final accuracies of
two methods are paired, on the seeds both ran. Every PC method is compared with PC
experience replay (`pc_er`) and backprop experience replay (`backprop_er`), the store
variants also with uniform replay from the same store (`pc_store_uniform_lean`), a
backprop method with `backprop_er`; each comparison gives the mean over seeds,
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

from pcastro.bench._methods import current_names, method_names
from pcastro.bench._stats import across_seeds, holm, mean_ci95

CONTROLS = ("backprop_er", "pc_er", "pc_store_uniform_lean")
"""Each method is compared with the controls listed before it (a control with those
before it only); a backprop method with `backprop_er` alone, and `pc_store_uniform_lean`
is a control of the store variants alone."""
SAME_STORE = {"pc_store_resume": ("pc_store_uniform",)}
"""A store variant also compared with fresh uniform replay from a store of the same kind
(resumed replay needs a store with states: its control is that store replayed fresh)."""
# Settings that may differ between parts: what each part runs, how its grid is searched
# (learning rates included: a method's choice is still checked across its parts) and which
# block of test seeds it runs.
PER_PART = {"methods", "lrs", "pc_lrs", "priority_alphas", "refresh_every", "gate_floors", "tols"}
PER_BLOCK = {"seeds", "first_test_seed"}
# What a selection records beside its choice (scores move with the device, the choice not).
SCORES = {"val_final_acc", "candidates", "at_edge", "collapsed_candidates"}


def load_parts(folder: Path) -> list[dict]:
    """Every `results.json` under `folder` (its `parts/*` or the folder itself), former
    method names read as current ones; refuses parts that would not pair: other settings,
    or the same method selected differently (a block of further seeds repeats the
    selection of the first block)."""
    paths = sorted(folder.glob("parts/*/results.json")) or [folder / "results.json"]
    if not paths[0].is_file():
        raise SystemExit(f"{folder} holds no results.json (nor parts/*/results.json).")
    parts = [current_names(json.loads(p.read_text()), "continual") for p in paths]
    first, chosen = parts[0], {}
    for path, part in zip(paths, parts, strict=True):
        for key, value in part["config"].items():
            if key not in PER_PART | PER_BLOCK and value != first["config"].get(key):
                raise SystemExit(
                    f"{path}: `{key}` is {value!r} against {first['config'].get(key)!r} in "
                    f"{paths[0]}: the runs would not pair."
                )
        for key, hp in part["details"]["selected"].items():
            choice = {k: v for k, v in hp.items() if k not in SCORES}
            if chosen.setdefault(key, (choice, path))[0] != choice:
                raise SystemExit(
                    f"{path}: {key} selected {choice} against {chosen[key][0]} in "
                    f"{chosen[key][1]}: the blocks of seeds are not one table."
                )
        part["name"] = path.parent.name
    return parts


def merge_rows(rows: list[tuple[dict, dict]]) -> dict:
    """One method's rows from parts that ran different blocks of test seeds, as one row
    over all its seeds in seed order (a seed run twice is refused)."""
    by_seed = {}
    for row, part in rows:
        for i, seed in enumerate(part["details"]["test_seeds"]):
            if seed in by_seed:
                raise SystemExit(
                    f"{row['method']}@{row['budget']}: test seed {seed} is in both "
                    f"{by_seed[seed][1]['name']} and {part['name']}."
                )
            by_seed[seed] = (i, part, row)
    for key in ("capacity", "memory_bytes"):
        if len({row.get(key) for row, _ in rows}) > 1:
            raise SystemExit(f"{rows[0][0]['method']}: `{key}` differs between its parts.")
    seeds = sorted(by_seed)
    pick = [by_seed[s] for s in seeds]
    first = rows[0][0]
    statuses = first["status_counts_per_seed"]
    return {
        **first,
        "test_seeds": seeds,
        "parts": sorted({p["name"] for _, p in rows}),
        "per_seed": [r["per_seed"][i] for i, _, r in pick],
        "failed_per_seed": [r["failed_per_seed"][i] for i, _, r in pick],
        "status_counts_per_seed": {
            k: [r["status_counts_per_seed"][k][i] for i, _, r in pick] for k in statuses
        },
        "collapsed_seeds": sum(r["collapsed_seeds"] for r, _ in rows),
        "run_s": sum(r["run_s"] for r, _ in rows),
    }


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
    found, selected = {}, {}
    for part in parts:
        selected.update(part["details"]["selected"])
        for r in part["results"]:
            found.setdefault((r["method"], r["budget"]), []).append((r, part))
    methods = {}
    for (method, budget), rows in found.items():
        r = merge_rows(rows)
        mean, ci, n = mean_ci95(r["per_seed"])
        methods[f"{method}@{budget}"] = {
            "method": method,
            "budget": budget,
            "parts": r["parts"],
            "mean": mean,
            "ci95": ci,
            "n": n,
            "test_seeds": r["test_seeds"],
            "per_seed": r["per_seed"],
            "capacity": r.get("capacity"),
            "memory_bytes": r.get("memory_bytes"),
            "collapsed_seeds": r["collapsed_seeds"],
            "failed_solves_per_seed": r["failed_per_seed"],
            "status_counts_per_seed": r["status_counts_per_seed"],
            "run_s": r["run_s"],
            **replay_cost(r, rows[0][1]["config"], selected),
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
            # Paired on the seeds both ran (a method may have more blocks than its control).
            a, b = (dict(zip(x["test_seeds"], x["per_seed"], strict=True)) for x in (m, ref))
            seeds = [s for s in m["test_seeds"] if s in b]
            comparisons.append(
                {"method": m["method"], "vs": control, "budget": m["budget"], "seeds": seeds,
                 **across_seeds([a[s] - b[s] for s in seeds])}
            )  # fmt: skip
    for row, rejected in zip(comparisons, holm([r["p"] for r in comparisons]), strict=True):
        row["holm_5pct"] = rejected
    return {
        "parts": [p["name"] for p in parts],
        "commands": {p["name"]: p["command"] for p in parts},
        "test_seeds": sorted({s for m in methods.values() for s in m["test_seeds"]}),
        "config": {k: v for k, v in config.items() if k not in PER_PART | PER_BLOCK},
        "methods": methods,
        "comparisons": comparisons,
    }


def markdown(summary: dict) -> str:
    lines = [
        f"Final accuracy after the 5 contexts (interval over seeds); "
        f"{summary['config']['iterations']} iterations per context.",
        "",
        "| method | M | items | bytes/item | replayed / iteration | inference steps on "
        "replay / iteration | final acc | seeds | collapsed seeds | failed solves | per seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in summary["methods"].values():
        per_item = "" if m["bytes_per_item"] is None else f"{m['bytes_per_item']:.0f}"
        lines.append(
            f"| {m['method']} | {m['budget'] or ''} | {m['capacity'] or ''} | {per_item} | "
            f"{m['replayed_per_iteration']} | "
            f"{m['inference_steps_for_replay_per_iteration']:.0f} | "
            f"{m['mean']:.3f} ± {m['ci95']:.3f} | {m['n']} | "
            f"{m['collapsed_seeds']} | {sum(m['failed_solves_per_seed'])} | "
            + " ".join(f"{v:.3f}" for v in m["per_seed"])
            + " |"
        )
    n = len(summary["comparisons"])
    lines += [
        "",
        f"Paired differences (on the seeds both ran); Holm over all {n} comparisons.",
        "",
        "| method − control | M | diff ± 95% CI (seeds) | seeds | p | Holm 5% | per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["comparisons"]:
        per_seed = " ".join(f"{v:+.3f}" for v in r["per_seed"])
        lines.append(
            f"| {r['method']} − {r['vs']} | {r['budget']} | {r['diff']:+.3f} ± {r['ci95']:.3f} "
            f"| {r['n_seeds']} | {r['p']:.3g} | {'yes' if r['holm_5pct'] else 'no'} | "
            f"{per_seed} |"
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
