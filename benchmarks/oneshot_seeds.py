"""One-shot transfer across seeds: every method's accuracy and the paired differences that
carry the claims, with intervals over seeds and a Holm correction.

    M=pc_sgd,pc_sgd_astro_columns,pc_astro_target
    M=$M,imprint,proto_cos,proto_euc,head_ft_replay,backprop_replay
    for s in 0 1 2; do
        python benchmarks/oneshot_diagnostics.py \\
            --diagnostics pc_astro_target_fresh,pc_sgd_target_fresh \\
            --dataset mnist --protocol transfer --seed $s --methods $M \\
            --sgd-lrs 0.003,0.01,0.03,0.1,0.3 --updates-per-example 1,3,10,30,100 \\
            --val-episodes 20 --frontier-episodes 0 --no-progress \\
            --out benchmarks/results/oneshot_target_seeds/mnist/s$s
    done
    python benchmarks/oneshot_seeds.py benchmarks/results/oneshot_target_seeds/mnist \
        --replace benchmarks/results/oneshot_target_seeds/mnist_imprint_scales \
        --methods imprint@pc,imprint@bp

`--replace FOLDER --methods A,B` takes those methods' rows from the runs in FOLDER (the
same seeds re-run with a wider grid, e.g. imprinting's scale), after checking that every
other method the two runs share has bit-for-bit the same per-episode values (the same
pretraining and episodes, so the rows stay paired).

Each seed pretrains its own networks and draws its own validation and test episodes, so a
seed's value of a comparison (the mean over its test episodes of the paired difference)
is one independent draw; the interval is the 95% Student-t interval over seeds and the
p-value a one-sample t-test of the per-seed values. Holm's correction runs over the
comparisons of the table on the primary metric (ten-way accuracy). The best baseline is
the non-PC method with the highest mean over seeds, chosen on test: that favours the
baseline. Writes `summary.json` (every per-seed value) and `summary.md` in the folder.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pcastro.bench._compare import is_pc_method
from pcastro.bench._stats import across_seeds, holm, mean_ci95

# Per dataset: the metrics (the primary one first, on which Holm runs) and their labels.
METRICS = {
    "transfer": {"ten_way_accuracy": "ten-way", "novel_accuracy": "novel accuracy",
                 "base_retention": "base retention"},
    "omniglot": {"random_20way": "20-way", "random_5way": "5-way",
                 "official_runs_20way": "official 20-way runs"},
}  # fmt: skip

# (method, reference, what the comparison asks); "BEST" is the best baseline.
QUESTIONS = (
    ("pc_astro_target", "BEST", "the astrocyte learner against the best baseline, any body"),
    ("pc_astro_target", "imprint@pc", "against imprinting on the same PC body"),
    ("pc_astro_target", "pc_sgd_target_fresh", "against the update restricted by hand"),
    ("pc_astro_target", "pc_sgd_astro_columns", "target-directed vs squared-error drive"),
    ("pc_astro_target", "pc_sgd", "column astrocytes vs none"),
    ("pc_astro_target_fresh", "BEST", "the same, novel rows started as imprinting does"),
    ("pc_astro_target_fresh", "pc_astro_target", "what starting the rows afresh adds"),
    ("pc_sgd_target_fresh", "BEST", "the hand-restricted update against the best baseline"),
    ("imprint@pc", "imprint@bp", "the PC body against the backprop body (imprinting)"),
)

# Omniglot: every episode learns a new head on the pretrained body.
OMNIGLOT_QUESTIONS = (
    ("pc_astro_target", "BEST", "the astrocyte learner against the best baseline, any body"),
    ("pc_astro_target", "pc_sgd", "column astrocytes (target-directed) vs none"),
    ("pc_sgd", "BEST", "PC's local update against the best baseline"),
    ("proto_cos@pc", "proto_cos@bp", "the PC body against the backprop body (prototypes)"),
    ("head_ft@pc", "head_ft@bp", "the PC body against the backprop body (head fine-tuning)"),
)


def protocol_of(runs: list[dict]) -> str:
    return "omniglot" if runs[0]["config"]["dataset"] == "omniglot" else "transfer"


def load_runs(folder: Path) -> list[dict]:
    runs = sorted(p for p in folder.iterdir() if (p / "results.json").is_file())
    if len(runs) < 2:
        raise SystemExit(f"{folder} holds {len(runs)} runs; at least 2 seeds are needed.")
    loaded = [{"name": p.name, **json.loads((p / "results.json").read_text())} for p in runs]
    seeds = [r["seed"] for r in loaded]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"{folder} holds runs with the same seed ({seeds}): not independent.")
    return loaded


def replace_rows(runs: list[dict], folder: Path, methods: list[str]) -> list[dict]:
    """`runs` with the rows of `methods` taken from the same seeds' runs in `folder`."""
    others = {r["seed"]: r for r in load_runs(folder)}
    out = []
    for run in runs:
        other = others.get(run["seed"])
        if other is None:
            raise SystemExit(f"{folder} has no run with seed {run['seed']}.")
        mine, theirs = episode_values(run), episode_values(other)
        for key in set(mine) & set(theirs):
            if key[0] not in methods and not np.array_equal(mine[key], theirs[key]):
                raise SystemExit(
                    f"{folder}, seed {run['seed']}: {key} differs from the main run, so the "
                    "runs do not share their pretraining and episodes; rows cannot be paired."
                )
        missing = [m for m in methods if not any(r["method"] == m for r in other["results"])]
        if missing:
            raise SystemExit(f"{folder}, seed {run['seed']}: no rows for {missing}.")
        rows = [r for r in run["results"] if r["method"] not in methods]
        rows += [r for r in other["results"] if r["method"] in methods]
        selected = {**run["details"]["selected"]}
        selected.update({m: other["details"]["selected"][m] for m in methods})
        details = {**run["details"], "selected": selected}
        out.append({**run, "results": rows, "details": details, "replaced": other["command"]})
    return out


def episode_values(run: dict) -> dict:
    """`{(method, metric): per-episode values}` of one run."""
    return {(r["method"], r["metric"]): np.asarray(r["values"]) for r in run["results"]}


def summarise(runs: list[dict]) -> dict:
    protocol = protocol_of(runs)
    metrics = tuple(METRICS[protocol])
    primary_metric = metrics[0]
    questions = OMNIGLOT_QUESTIONS if protocol == "omniglot" else QUESTIONS
    values = [episode_values(r) for r in runs]
    methods = [m for (m, metric) in values[0] if metric == primary_metric]
    methods = [m for m in methods if all((m, primary_metric) in v for v in values)]
    accuracy = {}
    for m in methods:
        for metric in metrics:
            per_seed = [float(v[(m, metric)].mean()) for v in values]
            mean, ci, n = mean_ci95(per_seed)
            accuracy.setdefault(m, {})[metric] = {"mean": mean, "ci95": ci, "per_seed": per_seed}
    baselines = [m for m in methods if not is_pc_method(m)]
    best = max(baselines, key=lambda m: accuracy[m][primary_metric]["mean"])
    rows, asked = [], set()
    for method, ref, question in questions:
        ref = best if ref == "BEST" else ref
        if method not in methods or ref not in methods or (method, ref) in asked:
            continue
        asked.add((method, ref))
        for metric in metrics:
            diffs = [float((v[(method, metric)] - v[(ref, metric)]).mean()) for v in values]
            rows.append(
                {"method": method, "vs": ref, "metric": metric, "question": question,
                 **across_seeds(diffs)}
            )  # fmt: skip
    primary = [r for r in rows if r["metric"] == primary_metric]
    for row, rejected in zip(primary, holm([r["p"] for r in primary]), strict=True):
        row["holm_5pct"] = rejected
    # Omniglot selects per task: `name/5-way`, `name/20-way`.
    keys = dict.fromkeys(k for run in runs for k in run["details"]["selected"])
    selected = {
        k: [run["details"]["selected"].get(k) for run in runs]
        for k in keys
        if k.split("/")[0] in methods
    }
    return {
        "runs": [r["name"] for r in runs],
        "seeds": [r["seed"] for r in runs],
        "dataset": runs[0]["config"]["dataset"],
        "protocol": protocol,
        "metrics": list(metrics),
        "commands": [r["command"] for r in runs],
        "replaced_from": [r["replaced"] for r in runs if "replaced" in r],
        "best_baseline": best,
        "accuracy": accuracy,
        "comparisons": rows,
        "selected": selected,
    }


def markdown(summary: dict) -> str:
    n = len(summary["runs"])
    protocol = summary.get("protocol", "transfer")
    metrics = summary.get("metrics", list(METRICS["transfer"]))
    labels = METRICS[protocol]
    primary_metric, others = metrics[0], metrics[1:]
    what = (
        f"One-shot Omniglot on {summary['dataset']} (a new head per episode on the "
        "pretrained body), 1 shot"
        if protocol == "omniglot"
        else f"One-shot transfer on {summary['dataset']}, 10-way 1-shot"
    )
    lines = [
        f"{what}, {n} seeds "
        f"({', '.join(map(str, summary['seeds']))}); each seed has its own pretraining, "
        "validation and test episodes. Intervals are 95% Student-t over seeds.",
        "",
        *(
            [
                "Some rows come from re-runs of the same seeds (same pretraining and episodes, "
                "checked bit for bit on the rows both share): "
                + "; ".join(f"`{c}`" for c in dict.fromkeys(summary["replaced_from"])),
                "",
            ]
            if summary["replaced_from"]
            else []
        ),
        "| method | "
        + " | ".join(labels[m].split()[0] for m in metrics)
        + f" | {labels[primary_metric]} per seed |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    order = sorted(
        summary["accuracy"], key=lambda m: -summary["accuracy"][m][primary_metric]["mean"]
    )
    for m in order:
        a = summary["accuracy"][m]
        cells = [f"{a[k]['mean']:.3f} ± {a[k]['ci95']:.3f}" for k in metrics]
        seeds = " ".join(f"{v:.3f}" for v in a[primary_metric]["per_seed"])
        lines.append(f"| {m} | {' | '.join(cells)} | {seeds} |")
    primary = [r for r in summary["comparisons"] if r["metric"] == primary_metric]
    lines += [
        "",
        f"Paired differences in {labels[primary_metric]} accuracy (best baseline: "
        f"{summary['best_baseline']}, chosen on test); Holm over the {len(primary)} "
        "comparisons.",
        "",
        "| method − reference | question | diff ± 95% CI (seeds) | p | Holm 5% | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in primary:
        seeds = " ".join(f"{v:+.3f}" for v in r["per_seed"])
        lines.append(
            f"| {r['method']} − {r['vs']} | {r['question']} | {r['diff']:+.3f} ± "
            f"{r['ci95']:.3f} | {r['p']:.3g} | {'yes' if r['holm_5pct'] else 'no'} | {seeds} |"
        )
    lines += [
        "",
        f"The same comparisons in {' and '.join(labels[m] for m in others)} (no correction):",
        "",
    ]
    lines += [
        "| method − reference | " + " | ".join(labels[m].split()[0] for m in others) + " |",
        "|---" * (len(others) + 1) + "|",
    ]
    by_key = {(r["method"], r["vs"], r["metric"]): r for r in summary["comparisons"]}
    for r in primary:
        cells = []
        for metric in others:
            o = by_key[(r["method"], r["vs"], metric)]
            cells.append(f"{o['diff']:+.3f} ± {o['ci95']:.3f}")
        lines.append(f"| {r['method']} − {r['vs']} | {' | '.join(cells)} |")
    lines += [
        "",
        "Hyperparameters selected on each seed's validation episodes (`*`: at the edge of "
        "its grid, where a wider grid might select otherwise):",
        "",
        "| method | per seed |",
        "|---|---|",
    ]
    for m, picks in summary["selected"].items():
        cells = []
        for pick in picks:
            if pick is None:
                cells.append("—")
                continue
            edge = set(pick.get("at_edge", []))
            shown = [
                f"{k}={v:g}{'*' if k in edge else ''}" if isinstance(v, float)
                else f"{k}={v}{'*' if k in edge else ''}"
                for k, v in pick.items()
                if k not in ("at_edge", "val_ten_way", "val_acc")
            ]  # fmt: skip
            cells.append(", ".join(shown))
        lines.append(f"| {m} | {'; '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="holds one run per seed, s0, s1, ...")
    parser.add_argument("--replace", type=Path, help="runs of the same seeds to take rows from")
    parser.add_argument("--methods", default="", help="comma-separated methods to take")
    args = parser.parse_args(argv)
    runs = load_runs(args.folder)
    if args.replace:
        methods = [m for m in args.methods.split(",") if m]
        if not methods:
            raise SystemExit("`--replace` needs `--methods A,B`: which rows to take.")
        runs = replace_rows(runs, args.replace, methods)
    summary = summarise(runs)
    (args.folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = markdown(summary)
    (args.folder / "summary.md").write_text(text)
    print(text)
    return summary


if __name__ == "__main__":
    sys.exit(main() and 0)
