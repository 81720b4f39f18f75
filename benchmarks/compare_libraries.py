"""One identical PC workload in pcastro and in the other JAX PC libraries.

Each library runs in its own virtual environment under the cache folder (pcx pins an old
jax; no pin touches the main environment), one process per library per repeat, interleaved
round-robin over libraries for `--repeats` rounds so machine drift cancels. pcastro, the
backprop baseline and the hand-written "lean" PC floor run in the main interpreter.

Workloads (see `benchmarks/adapters/_common.py`):

- digits: PC MLP 64-256-256-10 on sklearn digits / 16, batch 64;
- large: 784-1024-1024-10 on fixed random data, batch 256;

tanh hidden layers, identity output, Gaussian energy on every layer (target clamped on the
top layer), feedforward initialisation, 20 steps x <- x - 0.1 dF/dx on the hidden states,
one Adam(1e-3) weight update; float32.

Per library and workload: median samples/s over timed steps (after compile and warm-up),
compile time (first call, timed apart), peak memory (ru_maxrss, MiB) and training accuracy
after 5 epochs on digits (feedforward argmax). Output: a table on stdout,
`benchmarks/results/compare_libraries.json` and `.png`.

    python benchmarks/compare_libraries.py --repeats 3
    python benchmarks/compare_libraries.py --quick --libraries lean,backprop
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "adapters"))

import _driver as drv  # noqa: E402

WORKLOADS = ("digits", "large")
DEFAULT_STEPS = {"digits": 100, "large": 10}
DEFAULT_WARMUP = {"digits": 5, "large": 2}
BATCH = {"digits": 64, "large": 256}
REPEATS_KEY = {"samples_per_s": "samples_per_s_repeats", "compile_s": "compile_s_repeats"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libraries", default=",".join(drv.LIBRARIES))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--steps-digits", type=int, default=DEFAULT_STEPS["digits"])
    parser.add_argument("--steps-large", type=int, default=DEFAULT_STEPS["large"])
    parser.add_argument("--accuracy-epochs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=drv.default_cache())
    parser.add_argument("--jpc-source", default=None, help="pip-installable path or URL")
    parser.add_argument("--reinstall", action="store_true", help="rebuild the venvs")
    parser.add_argument("--timeout", type=float, default=1200.0, help="per process, seconds")
    parser.add_argument("--out", type=Path, default=drv.RESULTS_DIR / "compare_libraries.json")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--from-runs",
        type=Path,
        default=None,
        help="re-aggregate the runs of an earlier .meta.json instead of running anything",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round, 3 timed steps, 1 epoch"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.steps_digits, args.steps_large, args.accuracy_epochs = 1, 3, 2, 1
    return args


def aggregate(
    libraries: list[str], workloads: list[str], records: list[dict], envs: dict
) -> list[dict[str, Any]]:
    rows = []
    for workload in workloads:
        for lib in libraries:
            env = envs[lib]
            runs = [r for r in records if r.get("library") == lib and r.get("workload") == workload]
            ok = [r for r in runs if "error" not in r]
            row: dict[str, Any] = {
                "library": lib,
                "workload": workload,
                "samples_per_s": drv.median([r.get("samples_per_s") for r in ok]),
                "compile_s": drv.median([r.get("compile_s") for r in ok]),
                "peak_mib": drv.median([r.get("peak_mib") for r in ok]),
                "train_acc": drv.median([r.get("train_acc") for r in ok]),
                "versions": ok[0]["versions"] if ok else None,
            }
            if ok:
                row.update(
                    {
                        "repeats": len(ok),
                        "samples_per_s_repeats": [r["samples_per_s"] for r in ok],
                        # Fastest single step seen: less sensitive to other load on the machine.
                        "samples_per_s_best_step": max(
                            1e3 * r["batch"] / r["step_ms_min"] for r in ok
                        ),
                        "compile_s_repeats": [r["compile_s"] for r in ok],
                        "train_acc_repeats": [r.get("train_acc") for r in ok],
                        "peak_mib_repeats": [r["peak_mib"] for r in ok],
                        "timed_steps": ok[0].get("timed_steps"),
                        "batch": ok[0].get("batch"),
                        "device": ok[0].get("device"),
                        "setting": ok[0].get("setting"),
                        "notes": ok[0].get("notes"),
                    }
                )
            if env.reason:
                row["error"] = env.reason
            elif not ok:
                row["error"] = runs[0]["error"] if runs else "not run"
            elif len(ok) < len(runs):
                row["failed_repeats"] = [r["error"] for r in runs if "error" in r]
            rows.append(row)
    for row in rows:
        ref = next(
            (
                r["samples_per_s"]
                for r in rows
                if r["library"] == "pcastro" and r["workload"] == row["workload"]
            ),
            None,
        )
        row["ratio_to_pcastro"] = (
            row["samples_per_s"] / ref if ref and row["samples_per_s"] is not None else None
        )
    return rows


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'library':<10} {'workload':<7} {'samples/s':>10} {'range':>13} {'x pcastro':>9} "
        f"{'x lean':>7} {'compile s':>9} {'peak MiB':>8} {'train_acc':>9}  note"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        lean = next(
            (
                r["samples_per_s"]
                for r in rows
                if r["library"] == "lean" and r["workload"] == row["workload"]
            ),
            None,
        )
        x_lean = row["samples_per_s"] / lean if lean and row["samples_per_s"] else None
        note = row.get("error", "")
        reps = row.get("samples_per_s_repeats") or []
        spread = f"{min(reps):.0f}-{max(reps):.0f}" if reps else "-"
        print(
            f"{row['library']:<10} {row['workload']:<7} {drv.fmt(row['samples_per_s'], '10.0f')} "
            f"{spread:>13} "
            f"{drv.fmt(row['ratio_to_pcastro'], '9.2f')} {drv.fmt(x_lean, '7.2f')} "
            f"{drv.fmt(row['compile_s'], '9.2f')} {drv.fmt(row['peak_mib'], '8.0f')} "
            f"{drv.fmt(row['train_acc'], '9.3f')}  {note}"
        )


def plot(rows: list[dict], workloads: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(workloads), figsize=(5.5 * len(workloads), 6.5), squeeze=False)
    for col, workload in enumerate(workloads):
        sub = [r for r in rows if r["workload"] == workload]
        names = [r["library"] for r in sub]
        for row_i, (key, label) in enumerate(
            [("samples_per_s", "samples / s (median)"), ("compile_s", "compile s (first call)")]
        ):
            ax = axes[row_i][col]
            values = [r[key] or 0.0 for r in sub]
            reps = [r.get(REPEATS_KEY[key]) or [] for r in sub]
            lo = [v - min(rep) if rep else 0.0 for v, rep in zip(values, reps, strict=True)]
            hi = [max(rep) - v if rep else 0.0 for v, rep in zip(values, reps, strict=True)]
            colors = [
                "tab:red"
                if n == "pcastro"
                else "tab:gray"
                if n in ("lean", "backprop")
                else "tab:blue"
                for n in names
            ]
            ax.barh(names, values, color=colors, xerr=[lo, hi], capsize=3)
            for i, r in enumerate(sub):
                if r[key] is None:
                    text = "n/a"
                else:
                    text = f"{r[key]:.0f}" if r[key] >= 1000 else f"{r[key]:.3g}"
                ax.text(values[i] + hi[i], i, f" {text}", va="center", fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel(label)
            if row_i == 0:
                ax.set_title(f"{workload} (batch {BATCH.get(workload, '?')})")
            ax.margins(x=0.25)
    fig.suptitle(
        "PC train step, one workload, each library in its own venv "
        "(bars: median of repeats, whiskers: min-max)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_all(args, libraries, workloads, steps, cache) -> tuple[list[dict], dict]:
    """Run every (round, workload, library) process: the records and the environments."""
    data = drv.prepare_digits(cache)
    envs = {
        lib: drv.ensure_env(lib, cache, jpc_source=args.jpc_source, reinstall=args.reinstall)
        for lib in libraries
    }
    for lib, env in envs.items():
        if env.reason:
            drv.log(f"[skip] {lib}: {env.reason}")
    records = []
    for rnd, order in drv.interleaved([lib for lib in libraries if envs[lib].python], args.repeats):
        for workload in workloads:
            for lib in order:
                cli = [
                    "--workload", workload,
                    "--mode", "throughput",
                    "--steps", str(steps[workload]),
                    "--warmup", str(DEFAULT_WARMUP[workload]),
                    "--seed", str(rnd),
                    "--data", str(data),
                    "--accuracy-epochs", str(args.accuracy_epochs),
                ]  # fmt: skip
                tag = f"compare-{lib}-{workload}-r{rnd}"
                record = drv.run_adapter(envs[lib], cli, cache=cache, timeout=args.timeout, tag=tag)
                record.setdefault("workload", workload)
                records.append(record)
                drv.log(
                    f"[round {rnd + 1}/{args.repeats}] {lib:<9} {workload:<6} "
                    + (
                        f"error: {record['error']}"
                        if "error" in record
                        else f"{record['samples_per_s']:9.0f} samples/s, compile "
                        f"{record['compile_s']:.2f} s, acc {record.get('train_acc')}, "
                        f"{record['process_wall_s']:.1f} s wall"
                    )
                )
    return records, envs


def main(argv=None) -> int:
    args = parse_args(argv)
    libraries = drv.parse_libraries(args.libraries)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    cache = args.cache.expanduser()
    started = time.time()
    steps = {"digits": args.steps_digits, "large": args.steps_large}
    if args.from_runs is not None:
        meta = json.loads(args.from_runs.read_text())
        records = meta["runs"]
        envs = {
            lib: drv.Env(lib, None, reason=meta["environments"].get(lib, {}).get("reason"))
            for lib in libraries
        }
        rows = aggregate(libraries, workloads, records, envs)
        print_table(rows)
        drv.write_json(args.out, rows)
        if not args.no_plot:
            plot(rows, workloads, args.out.with_suffix(".png"))
        return 0
    records, envs = run_all(args, libraries, workloads, steps, cache)
    rows = aggregate(libraries, workloads, records, envs)
    print_table(rows)
    out = args.out
    drv.write_json(out, rows)
    drv.write_json(
        out.with_suffix(".meta.json"),
        {
            "command": "python benchmarks/compare_libraries.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "wall_s": time.time() - started,
            "machine": drv.machine(),
            "repeats": args.repeats,
            "steps": steps,
            "warmup": DEFAULT_WARMUP,
            "accuracy_epochs": args.accuracy_epochs,
            "environments": {
                lib: {
                    "python": "main interpreter"
                    if lib in drv.MAIN_ENV
                    else f"<cache>/venvs/{lib}"
                    if env.python
                    else None,
                    "reason": env.reason,
                }
                for lib, env in envs.items()
            },
            "runs": records,
        },
    )
    if not args.no_plot:
        plot(rows, workloads, out.with_suffix(".png"))
    drv.log(f"wrote {out} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
