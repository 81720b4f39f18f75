"""Which PC pretraining gives the PC body backprop's imprinting accuracy (full MNIST transfer).

Every run pretrains both bodies on the base digits and reads them out by imprinting and
cosine prototypes (`--methods imprint,proto_cos`); only the PC pretraining's inference
differs between runs (`--inference-steps`, `--solver`, `--dt`, `--pretrain-epochs`). The
setting is chosen on seed 0's validation episodes (imprint@pc's validation ten-way accuracy
at its selected scale); the chosen one is then run on seeds 1 and 2, and compared on test
episodes, per seed, with the backprop body of the same run and with the default PC
pretraining (20 AdaptiveEuler steps, 10 epochs: `oneshot_target_seeds/mnist_imprint_scales`,
the same seeds and episodes).

    COMMON="--dataset mnist --protocol transfer --methods imprint,proto_cos --val-episodes 20 \\
        --frontier-episodes 0 --no-progress"
    pcastro oneshot $COMMON --seed 0 --inference-steps 3 --solver euler --dt 0.1 \\
        --out benchmarks/results/oneshot_imprint_pretraining/euler3_s0   # and the others
    python benchmarks/imprint_pretraining.py benchmarks/results/oneshot_imprint_pretraining \\
        --default benchmarks/results/oneshot_target_seeds/mnist_imprint_scales --chosen euler3_dt002

Writes `summary.json` and `summary.md` in the folder.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from oneshot_seeds import episode_values  # benchmarks/, beside this script

from pcastro.bench._stats import across_seeds

METRIC = "ten_way_accuracy"


def load(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def values(run: dict, method: str) -> np.ndarray:
    return episode_values(run)[(method, METRIC)]


def setting(run: dict) -> str:
    c = run["config"]
    return (
        f"{c['inference_steps']} {c['solver']} steps"
        + (f" (dt {c['dt']:g})" if c["solver"] == "euler" else "")
        + f", {c['pretrain_epochs']} epochs"
    )


def sweep_row(name: str, run: dict) -> dict:
    """One run of the sweep: its PC pretraining, validation selections and test means."""
    sel = run["details"]["selected"]
    return {
        "run": name,
        "setting": setting(run),
        "val_imprint_pc": sel["imprint@pc"]["val_ten_way"],
        "scale": sel["imprint@pc"]["scale"],
        "at_edge": sel["imprint@pc"]["at_edge"],
        "val_imprint_bp": sel["imprint@bp"]["val_ten_way"],
        "val_proto_cos_pc": sel["proto_cos@pc"]["val_ten_way"],
        "test_imprint_pc": float(values(run, "imprint@pc").mean()),
        "test_imprint_bp": float(values(run, "imprint@bp").mean()),
    }


def summarise(folder: Path, default: Path, chosen: str) -> dict:
    runs = {p.name: load(p) for p in sorted(folder.iterdir()) if (p / "results.json").is_file()}
    default_runs = {load(p)["seed"]: load(p) for p in sorted(default.iterdir())
                    if (p / "results.json").is_file()}  # fmt: skip
    sweep = [sweep_row(name, run) for name, run in runs.items() if run["seed"] == 0]
    sweep.append(sweep_row(f"default ({default.parent.name}/{default.name}/s0)", default_runs[0]))
    sweep.sort(key=lambda r: -r["val_imprint_pc"])
    picked = {run["seed"]: run for name, run in runs.items() if name.startswith(chosen + "_s")}
    seeds = sorted(picked)
    missing = [s for s in seeds if s not in default_runs]
    if len(seeds) < 2 or missing:
        raise SystemExit(f"need the chosen setting on >= 2 seeds with default runs ({seeds}).")
    for s in seeds:  # the backprop body does not depend on the PC flags: the rows must pair
        if not np.array_equal(
            values(picked[s], "imprint@bp"), values(default_runs[s], "imprint@bp")
        ):
            raise SystemExit(f"seed {s}: imprint@bp differs from the default run; not paired.")
    comparisons = []
    for label, a, b in (
        ("imprint@pc (chosen) − imprint@bp", lambda s: values(picked[s], "imprint@pc"),
         lambda s: values(picked[s], "imprint@bp")),
        ("imprint@pc (chosen) − imprint@pc (default)", lambda s: values(picked[s], "imprint@pc"),
         lambda s: values(default_runs[s], "imprint@pc")),
        ("imprint@pc (default) − imprint@bp", lambda s: values(default_runs[s], "imprint@pc"),
         lambda s: values(default_runs[s], "imprint@bp")),
        ("proto_cos@pc (chosen) − proto_cos@bp", lambda s: values(picked[s], "proto_cos@pc"),
         lambda s: values(picked[s], "proto_cos@bp")),
    ):  # fmt: skip
        diffs = [float((a(s) - b(s)).mean()) for s in seeds]
        comparisons.append({"comparison": label, **across_seeds(diffs)})
    accuracy = {
        m: [float(values(picked[s], m).mean()) for s in seeds]
        for m in ("imprint@pc", "imprint@bp", "proto_cos@pc", "proto_cos@bp")
    }
    accuracy["imprint@pc (default)"] = [float(values(default_runs[s], "imprint@pc").mean())
                                        for s in seeds]  # fmt: skip
    return {"chosen": chosen, "chosen_setting": setting(picked[seeds[0]]), "seeds": seeds,
            "sweep_seed0": sweep, "accuracy_per_seed": accuracy, "comparisons": comparisons,
            "commands": [picked[s]["command"] for s in seeds]}  # fmt: skip


def markdown(summary: dict) -> str:
    lines = [
        "PC pretraining settings on seed 0, sorted by imprint@pc's validation ten-way "
        "accuracy (the selection); test columns for reference:",
        "",
        "| run | PC pretraining | val imprint@pc (scale) | val imprint@bp | val proto_cos@pc "
        "| test imprint@pc | test imprint@bp |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["sweep_seed0"]:
        edge = "*" if r["at_edge"] else ""
        lines.append(
            f"| {r['run']} | {r['setting']} | {r['val_imprint_pc']:.4f} ({r['scale']:g}{edge}) "
            f"| {r['val_imprint_bp']:.4f} | {r['val_proto_cos_pc']:.4f} "
            f"| {r['test_imprint_pc']:.4f} | {r['test_imprint_bp']:.4f} |"
        )
    seeds = summary["seeds"]
    lines += [
        "",
        f"The chosen setting ({summary['chosen_setting']}) on seeds {', '.join(map(str, seeds))}"
        " — test ten-way accuracy per seed, and paired differences (each seed's mean over its "
        "test episodes; 95% Student-t interval over seeds):",
        "",
        "| method | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---" * (len(seeds) + 1) + "|",
    ]
    for m, vals in summary["accuracy_per_seed"].items():
        lines.append(f"| {m} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
    lines += ["", "| comparison | diff ± 95% CI (seeds) | p | per seed |", "|---|---|---|---|"]
    for c in summary["comparisons"]:
        per = " ".join(f"{v:+.4f}" for v in c["per_seed"])
        lines.append(
            f"| {c['comparison']} | {c['diff']:+.4f} ± {c['ci95']:.4f} | {c['p']:.3g} | {per} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--default", type=Path, required=True, help="default-pretraining runs")
    parser.add_argument("--chosen", required=True, help="run-name prefix of the chosen setting")
    args = parser.parse_args(argv)
    summary = summarise(args.folder, args.default, args.chosen)
    (args.folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = markdown(summary)
    (args.folder / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
