"""Split-MNIST class-incremental benchmark: the runs behind the README table.

    PCASTRO_DATA=/path/to/mnist python benchmarks/continual.py paper   # protocol check
    PCASTRO_DATA=/path/to/mnist python benchmarks/continual.py table   # the README table

`paper` runs backprop fine-tuning, joint training and experience replay (2,000 exemplars)
at van de Ven & Tolias's settings (2,000 iterations per context) on 3 seeds, to check
the protocol against their numbers. `paper-pc` runs PC at the same settings on 5 seeds
(Euler, dt 0.3; `paper-adaptive` runs them with the curvature-following `AdaptiveEuler`,
in kept parts): fine-tuning, joint, ER and the store (uniform, priority only, gate only)
at M = 2,000, with the PC learning rate that the 60-iteration table selected (1e-3) and the discard
tolerance selected on validation. `table` runs every method and budget on 10 seeds at
fewer iterations per context (see benchmarks/README.md for why), one part per group of
methods (a finished part is kept when the script is rerun), then merges the parts into
`results.json`, `table.txt` and the figures in `benchmarks/results/continual_mnist/`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pcastro.bench._config import ContinualConfig
from pcastro.bench._continual import run_continual
from pcastro.bench._continual_report import merge_parts, write_outputs
from pcastro.bench._report import save_json
from pcastro.bench._stats import mean_ci95

RESULTS = Path(__file__).parent / "results"
GROUPS = {
    "bp": ("backprop_finetune", "backprop_joint", "backprop_er", "backprop_per"),
    "pc": ("pc_finetune", "pc_joint", "pc_er"),
    "store": (
        "pc_store_uniform",
        "pc_store_priority",
        "pc_store_gate",
        "pc_store_both",
        "pc_store_both_refresh",
    ),
    # Ablated astrocytes must equal the priority-only store exactly; checked at one budget.
    "ablated": ("pc_store_ablated", "pc_store_priority"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which", choices=("paper", "paper-pc", "paper-adaptive", "knobs", "table", "merge")
    )
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--groups", default="pc,store,bp,ablated")
    args = parser.parse_args(argv)
    if args.which in ("paper", "paper-pc"):
        # The paper's length (2,000 iterations per context) at M = 2,000 exemplars.
        paper = dict(dataset="mnist", iterations=2000, eval_every=100, budgets=(2000,))
        if args.which == "paper":
            methods = ("backprop_finetune", "backprop_joint", "backprop_er")
            cfg = ContinualConfig(**paper, seeds=3, methods=methods, lrs=(1e-3,))
            out = RESULTS / "continual_mnist_paper"
        else:
            methods = ("pc_finetune", "pc_joint", "pc_er", "pc_store_uniform",
                       "pc_store_priority", "pc_store_gate")  # fmt: skip
            cfg = ContinualConfig(**paper, seeds=5, methods=methods, pc_lrs=(1e-3,))
            out = RESULTS / "continual_mnist_paper_pc"
        payload = run_continual(cfg, progress=False)
        save_json(out, payload)
        write_outputs(out, payload)
        return 0
    if args.which == "paper-adaptive":
        return paper_adaptive(args.seeds)
    if args.which == "knobs":
        return knobs(args.seeds)
    out = RESULTS / "continual_mnist"
    if args.which == "table":
        for group in args.groups.split(","):
            part = out / "parts" / group
            if (part / "results.json").exists():
                print(f"{group}: kept {part / 'results.json'}")
                continue
            t0 = time.perf_counter()
            cfg = ContinualConfig(
                dataset="mnist", seeds=args.seeds, iterations=args.iterations,
                eval_every=max(1, args.iterations // 4), methods=GROUPS[group],
                budgets=(200,) if group == "ablated" else (200, 1000, 2000),
            )  # fmt: skip
            save_json(part, run_continual(cfg, progress=False))
            print(f"{group}: {time.perf_counter() - t0:.0f} s", flush=True)
    parts = sorted((out / "parts").glob("*/results.json"))
    payload = merge_parts([json.loads(p.read_text()) for p in parts])
    save_json(out, payload)
    write_outputs(out, payload)
    return 0


def paper_adaptive(seeds: int) -> int:
    """`paper-pc` again with the curvature-following solver (`--solver adaptive`, the
    default) instead of Euler with dt 0.3, in parts that are kept as they finish."""
    out = RESULTS / "continual_mnist_paper_adaptive"
    groups = {
        "replay": ("pc_er", "pc_store_uniform"),
        "bounds": ("pc_finetune", "pc_joint"),
        "astro": ("pc_store_priority", "pc_store_gate"),
    }
    for group, methods in groups.items():
        part = out / "parts" / group
        if (part / "results.json").exists():
            print(f"{group}: kept {part / 'results.json'}")
            continue
        t0 = time.perf_counter()
        cfg = ContinualConfig(
            dataset="mnist", iterations=2000, eval_every=100, budgets=(2000,), seeds=seeds,
            methods=methods, pc_lrs=(1e-3,), solver="adaptive",
        )  # fmt: skip
        save_json(part, run_continual(cfg, progress=False))
        print(f"{group}: {time.perf_counter() - t0:.0f} s", flush=True)
    parts = sorted((out / "parts").glob("*/results.json"))
    payload = merge_parts([json.loads(p.read_text()) for p in parts])
    save_json(out, payload)
    write_outputs(out, payload)
    return 0


def knobs(seeds: int) -> int:
    """Sweep the priority exponent and the gate floor; every run is paired with uniform
    store replay (same seeds, same data order)."""
    out = RESULTS / "continual_mnist_knobs"
    common = dict(
        dataset="mnist", seeds=seeds, iterations=60, eval_every=15, budgets=(1000,),
        pc_lrs=(1e-3,), tols=(0.0,),
    )  # fmt: skip
    runs = [("pc_store_uniform", {})]
    runs += [("pc_store_priority", {"priority_alphas": (a,)}) for a in (0.25, 0.5, 1.0)]
    runs += [("pc_store_gate", {"gate_floors": (g,)}) for g in (0.0, 0.5, 0.9)]
    runs += [("pc_store_priority_refresh", {"priority_alphas": (a,)}) for a in (0.5, 1.0)]
    rows, meta = [], {}
    for method, knob in runs:
        part = out / "parts" / (method + "".join(f"_{k}{v[0]}" for k, v in knob.items()))
        if not (part / "results.json").exists():
            cfg = ContinualConfig(methods=(method,), **common, **knob)
            save_json(part, run_continual(cfg, progress=False))
        part_payload = json.loads((part / "results.json").read_text())
        meta = {k: part_payload[k] for k in ("versions", "device", "seed")}
        (row,) = part_payload["results"]
        rows.append({**row, "knob": {k: v[0] for k, v in knob.items()}})
    control = np.asarray(rows[0]["per_seed"])
    lines = [
        "| method | knob | final acc | minus uniform store replay (paired) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        diff = np.asarray(row["per_seed"]) - control
        mean, ci, n = mean_ci95(diff)
        row["paired_vs_uniform"] = {"mean_diff": mean, "ci95": ci, "n": n}
        knob = ", ".join(f"{k} = {v}" for k, v in row["knob"].items()) or "-"
        star = " *" if abs(mean) > ci else ""
        lines.append(
            f"| {row['method']} | {knob} | {row['mean']:.3f} ± {row['ci95']:.3f} | "
            f"{mean:+.3f} ± {ci:.3f}{star} |"
        )
    out.mkdir(parents=True, exist_ok=True)
    summary = {"command": " ".join(sys.argv), **meta, "config": common, "rows": rows}
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
