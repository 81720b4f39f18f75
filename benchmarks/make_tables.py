"""Markdown tables from `results.json` files (as pasted into the READMEs).

python benchmarks/make_tables.py benchmarks/results/oneshot_mnist5k_scratch
"""

import json
import sys
from pathlib import Path


def oneshot_table(payload) -> str:
    metrics = list(dict.fromkeys(r["metric"] for r in payload["results"]))
    methods = list(dict.fromkeys(r["method"] for r in payload["results"]))
    cell = {
        (r["method"], r["metric"]): f"{r['mean']:.3f} ± {r['ci95']:.3f}" for r in payload["results"]
    }
    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    lines += [
        f"| {m} | " + " | ".join(cell.get((m, k), "") for k in metrics) + " |" for m in methods
    ]
    return "\n".join(lines)


def interrupt_table(payload) -> str:
    cols = [(p, t) for p in ("A_k", "B", "final") for t in ("A", "B")]
    methods = list(dict.fromkeys(r["method"] for r in payload["results"]))
    cell = {
        (r["method"], r["phase"], r["task"]): f"{r['mean']:.2f} ± {r['ci95']:.2f}"
        for r in payload["results"]
    }
    lines = [
        "| method | " + " | ".join(f"{p}: {t}" for p, t in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    lines += [f"| {m} | " + " | ".join(cell[(m, p, t)] for p, t in cols) + " |" for m in methods]
    return "\n".join(lines)


def main(argv):
    for folder in argv:
        payload = json.loads((Path(folder) / "results.json").read_text())
        is_interrupt = "phase" in payload["results"][0]
        where = f"{payload['device']}, seed {payload['seed']}, {payload['date']}"
        print(f"`{payload['command']}` ({where})\n")
        print(interrupt_table(payload) if is_interrupt else oneshot_table(payload))
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
