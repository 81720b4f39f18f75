"""Markdown tables of a one-shot `results.json`: every method and metric (mean ± 95% CI),
the paired differences of every PC method minus the best baseline, and what was chosen
on validation.

    python benchmarks/oneshot_report.py benchmarks/results/oneshot_mnist_transfer
    python benchmarks/oneshot_report.py RUN --with OTHER --pairs pc_astro_target-pc_sgd

`--with OTHER` joins a second run of the same seed (the same pretraining and episodes,
checked: every method both runs hold must have bit-for-bit the same per-episode values),
and `--pairs A-B,...` adds the paired differences A − B over the episodes, per metric,
with A and B from either run.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from oneshot_seeds import episode_values

from pcastro.bench._stats import mean_ci95


def report(payload) -> str:
    rows = payload["results"]
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["metric"]): f"{r['mean']:.3f} ± {r['ci95']:.3f}" for r in rows}
    n = {r["metric"]: r["n"] for r in rows}
    lines = [
        f"`{payload['command']}` ({payload['device']}, seed {payload['seed']}, "
        f"{payload['details']['wall_s']:.0f} s; test episodes per metric: "
        + ", ".join(f"{k} {v}" for k, v in n.items())
        + ")",
        "",
        "| method | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    lines += [
        f"| {m} | " + " | ".join(cell.get((m, k), "") for k in metrics) + " |" for m in methods
    ]
    paired = payload["details"].get("paired", [])
    if paired:
        lines += [
            "",
            f"Paired differences, PC method minus the best baseline (`{paired[0]['vs']}`), "
            "mean and 95% CI over the same episodes:",
            "",
            "| method | " + " | ".join(metrics) + " |",
            "|---" * (len(metrics) + 1) + "|",
        ]
        diff = {(p["method"], p["metric"]): f"{p['diff']:+.3f} ± {p['ci95']:.3f}" for p in paired}
        for m in dict.fromkeys(p["method"] for p in paired):
            lines.append(f"| {m} | " + " | ".join(diff.get((m, k), "") for k in metrics) + " |")
    return "\n".join(lines)


def join(payload: dict, other: dict, other_name: str) -> dict:
    """`payload` with the rows of `other` it lacks, after checking that the two runs share
    their episodes (every (method, metric) both hold has the same per-episode values)."""
    mine, theirs = episode_values(payload), episode_values(other)
    shared = sorted(set(mine) & set(theirs))
    if not shared:
        raise SystemExit(f"{other_name} shares no method with the run: cannot check pairing.")
    for method, metric in shared:
        if not np.array_equal(mine[(method, metric)], theirs[(method, metric)]):
            raise SystemExit(
                f"{other_name}: {method} ({metric}) differs per episode from the run's: not "
                "the same pretraining and episodes, so the rows would not pair."
            )
    extra = [r for r in other["results"] if (r["method"], r["metric"]) not in mine]
    return {**payload, "results": [*payload["results"], *extra]}


def paired(payload: dict, pairs: list[tuple[str, str]]) -> str:
    """Markdown: per pair `A − B` and metric, the mean ± 95% CI of the per-episode
    differences."""
    rows = episode_values(payload)
    metrics = list(dict.fromkeys(r["metric"] for r in payload["results"]))
    lines = [
        "Paired differences over the same episodes (mean ± 95% CI; n per metric):",
        "",
        "| comparison | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for a, b in pairs:
        cells = []
        for k in metrics:
            if (a, k) not in rows or (b, k) not in rows:
                raise SystemExit(
                    f"no {a} or {b} for {k}: methods are {sorted({m for m, _ in rows})}"
                )
            mean, ci, n = mean_ci95(rows[(a, k)] - rows[(b, k)])
            cells.append(f"{mean:+.3f} ± {ci:.3f} (n = {n})")
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="each holds a results.json")
    parser.add_argument("--with", dest="other", type=Path, default=None,
                        help="a second run of the same seed and episodes to join")  # fmt: skip
    parser.add_argument("--pairs", default="", help="A-B,... paired differences to add")
    args = parser.parse_args(argv)
    pairs = [(a, b) for a, _, b in (p.partition("-") for p in args.pairs.split(",") if p)]
    if (args.other or pairs) and len(args.folders) != 1:
        raise SystemExit("--with and --pairs take one run.")
    out = []
    for folder in args.folders:
        payload = json.loads((folder / "results.json").read_text())
        if args.other is not None:
            other = json.loads((args.other / "results.json").read_text())
            payload = join(payload, other, str(args.other))
        out.append(report(payload))
        if pairs:
            out.append(paired(payload, pairs))
    text = "\n\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    main()
