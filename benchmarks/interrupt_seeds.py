"""Interrupted learning across seeds: each condition minus its control, paired per seed,
with the interval taken over seeds (not over the episodes of one run) and a Holm
correction over every comparison in the table.

    for s in 0 1 2 3 4; do
        pcastro interrupt --dataset mnist5k --episodes 20 --seed $s --no-progress \\
            --no-compilation-cache --out benchmarks/results/interrupt_mnist5k_seeds/s$s
    done
    python benchmarks/interrupt_seeds.py benchmarks/results/interrupt_mnist5k_seeds

Each seed draws its own validation episodes, hyperparameters, test episodes and initial
weights. Per seed, a comparison's value is the mean over that seed's test episodes of the
paired difference after the final phase (task A, task B, and their mean); the table gives
the mean over seeds, its 95% Student-t interval over seeds, the two-sided p-value of a
one-sample t-test against 0, and whether it survives Holm's step-down correction at 5%.
Writes `summary.json` (with every per-seed value) and `summary.md` in the folder.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pcastro.bench._interrupt import final_differences
from pcastro.bench._stats import across_seeds, holm


def per_seed(folder: Path) -> dict:
    """`{(method, control, task): mean paired difference}` of one seed's run."""
    payload = json.loads((folder / "results.json").read_text())
    return {k: float(np.mean(d)) for k, d in final_differences(payload["results"]).items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="holds one run per seed, s0, s1, ...")
    args = parser.parse_args(argv)
    runs = sorted(p for p in args.folder.iterdir() if (p / "results.json").is_file())
    if len(runs) < 2:
        raise SystemExit(f"{args.folder} holds {len(runs)} runs; at least 2 seeds are needed.")
    seeds = [per_seed(p) for p in runs]
    rows = []
    for key in seeds[0]:
        summary = across_seeds([s[key] for s in seeds])
        rows.append({"method": key[0], "vs": key[1], "task": key[2], **summary})
    for row, rejected in zip(rows, holm([r["p"] for r in rows]), strict=True):
        row["holm_5pct"] = rejected
    summary = {"runs": [p.name for p in runs], "comparisons": rows}
    (args.folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"Across {len(runs)} seeds ({', '.join(p.name for p in runs)}); interval over seeds; "
        f"Holm over all {len(rows)} comparisons.",
        "",
        "| condition − control | task | diff ± 95% CI (seeds) | p | Holm 5% | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds_text = " ".join(f"{v:+.3f}" for v in r["per_seed"])
        lines.append(
            f"| {r['method']} − {r['vs']} | {r['task']} | {r['diff']:+.3f} ± {r['ci95']:.3f} "
            f"| {r['p']:.3g} | {'yes' if r['holm_5pct'] else 'no'} | {seeds_text} |"
        )
    (args.folder / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    sys.exit(main() and 0)
