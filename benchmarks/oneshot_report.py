"""Markdown tables of a one-shot `results.json`: every method and metric (mean ± 95% CI),
the paired differences of every PC method minus the best baseline, and what was chosen
on validation.

python benchmarks/oneshot_report.py benchmarks/results/oneshot_mnist_transfer
"""

import json
import sys
from pathlib import Path


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


def main(argv):
    for folder in argv:
        print(report(json.loads((Path(folder) / "results.json").read_text())))
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
