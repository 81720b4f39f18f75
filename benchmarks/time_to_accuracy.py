"""Time to 95% test accuracy on sklearn digits, per PC library.

Same MLP 64-256-256-10 (tanh hidden, identity output, Gaussian energies) on sklearn's
digits (values/16, 80/20 stratified split, random_state=0), batch 64, Adam(1e-3). Each
library uses its documented default inference setting where it has one (the adapter
records it in `setting`). Wall time runs from the start of training (compile included;
compile time also reported apart) until the test accuracy, evaluated once per epoch by a
feedforward pass, first reaches `--target` (0.95); `--max-epochs` caps the run and such a
seed reports `null` seconds. Median over `--seeds` seeds (interleaved round-robin over
libraries; a seed that never reaches the target counts as slower than any that does).

    python benchmarks/time_to_accuracy.py --seeds 3
    python benchmarks/time_to_accuracy.py --quick --libraries lean,backprop
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "adapters"))

import _driver as drv  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libraries", default=",".join(drv.LIBRARIES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=50)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--cache", type=Path, default=drv.default_cache())
    parser.add_argument("--jpc-source", default=None, help="pip-installable path or URL")
    parser.add_argument("--reinstall", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per process, seconds")
    parser.add_argument("--out", type=Path, default=drv.RESULTS_DIR / "time_to_accuracy.json")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 seed, 2 epochs")
    parser.add_argument(
        "--from-runs",
        type=Path,
        default=None,
        help="re-aggregate the runs of an earlier .meta.json instead of running anything",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.max_epochs = 1, 2
    return args


def median_seconds(values: list[float | None]) -> float | None:
    """Median with unreached seeds as +inf: null when at least half never got there."""
    if not values:
        return None
    ranked = sorted(math.inf if v is None else v for v in values)
    mid = statistics.median(ranked)
    return None if math.isinf(mid) else mid


def aggregate(libraries: list[str], records: list[dict], envs: dict) -> list[dict[str, Any]]:
    rows = []
    for lib in libraries:
        runs = [r for r in records if r.get("library") == lib]
        ok = [r for r in runs if "error" not in r]
        reached = [r for r in ok if r.get("seconds") is not None]
        row: dict[str, Any] = {
            "library": lib,
            "seconds": median_seconds([r.get("seconds") for r in ok]),
            "compile_s": drv.median([r.get("compile_s") for r in ok]),
            "epochs": drv.median([r.get("epochs") for r in reached]) if reached else None,
            "final_acc": drv.median([r.get("final_acc") for r in ok]),
            "setting": ok[0].get("setting") if ok else None,
            "versions": ok[0].get("versions") if ok else None,
        }
        if ok:
            row.update(
                {
                    "seeds": [r["seed"] for r in ok],
                    "seconds_per_seed": [r.get("seconds") for r in ok],
                    "epochs_per_seed": [r.get("epochs") for r in ok],
                    "compile_s_per_seed": [r.get("compile_s") for r in ok],
                    "final_acc_per_seed": [r.get("final_acc") for r in ok],
                    "reached": f"{len(reached)}/{len(ok)}",
                    "notes": ok[0].get("notes"),
                    "device": ok[0].get("device"),
                }
            )
        if envs[lib].reason:
            row["error"] = envs[lib].reason
        elif not ok:
            row["error"] = runs[0]["error"] if runs else "not run"
        rows.append(row)
    return rows


def print_table(rows: list[dict], target: float) -> None:
    head = (
        f"{'library':<10} {'s to ' + format(target, '.0%'):>9} {'compile s':>9} {'epochs':>6} "
        f"{'reached':>7} {'final_acc':>9}  setting"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        print(
            f"{row['library']:<10} {drv.fmt(row['seconds'], '9.2f')} "
            f"{drv.fmt(row['compile_s'], '9.2f')} {drv.fmt(row['epochs'], '6.1f')} "
            f"{row.get('reached', '-'):>7} {drv.fmt(row['final_acc'], '9.3f')}  "
            f"{row.get('error') or row.get('setting') or ''}"
        )


def plot(rows: list[dict], records: list[dict], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_bar, ax_curve) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r["library"] for r in rows]
    values = [r["seconds"] or 0.0 for r in rows]
    ax_bar.barh(names, values, color=["tab:red" if n == "pcastro" else "tab:blue" for n in names])
    for i, r in enumerate(rows):
        if r.get("error"):
            label = "n/a"
        elif r["seconds"] is None:
            label = "not reached"
        else:
            label = f"{r['seconds']:.2f} s"
        ax_bar.text(values[i], i, f" {label}", va="center", fontsize=8)
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel(f"wall s to {target:.0%} test accuracy (median over seeds)")
    ax_bar.margins(x=0.3)
    for lib in names:
        curves = [
            r["test_acc_curve"] for r in records if r.get("library") == lib and "error" not in r
        ]
        if curves:
            longest = max(len(c) for c in curves)
            mean = [statistics.mean(c[i] for c in curves if len(c) > i) for i in range(longest)]
            ax_curve.plot(range(1, longest + 1), mean, label=lib)
    ax_curve.axhline(target, color="k", lw=0.8, ls="--")
    ax_curve.set_xlabel("epoch")
    ax_curve.set_ylabel("test accuracy (mean over seeds, until stop)")
    ax_curve.legend(fontsize=8)
    fig.suptitle("sklearn digits, MLP 64-256-256-10, batch 64 (CPU)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    libraries = drv.parse_libraries(args.libraries)
    cache = args.cache.expanduser()
    started = time.time()
    if args.from_runs is not None:
        meta = json.loads(args.from_runs.read_text())
        records = meta["runs"]
        envs = {
            lib: drv.Env(lib, None, reason=meta["environments"].get(lib, {}).get("reason"))
            for lib in libraries
        }
        rows = aggregate(libraries, records, envs)
        print_table(rows, args.target)
        drv.write_json(args.out, rows)
        if not args.no_plot:
            plot(rows, records, args.target, args.out.with_suffix(".png"))
        return 0
    data = drv.prepare_digits(cache)
    envs = {
        lib: drv.ensure_env(lib, cache, jpc_source=args.jpc_source, reinstall=args.reinstall)
        for lib in libraries
    }
    for lib, env in envs.items():
        if env.reason:
            drv.log(f"[skip] {lib}: {env.reason}")
    records = []
    for seed, order in drv.interleaved([lib for lib in libraries if envs[lib].python], args.seeds):
        for lib in order:
            cli = [
                "--workload", "digits",
                "--mode", "tta",
                "--seed", str(seed),
                "--data", str(data),
                "--max-epochs", str(args.max_epochs),
                "--target-acc", str(args.target),
            ]  # fmt: skip
            record = drv.run_adapter(
                envs[lib], cli, cache=cache, timeout=args.timeout, tag=f"tta-{lib}-s{seed}"
            )
            records.append(record)
            drv.log(
                f"[seed {seed + 1}/{args.seeds}] {lib:<9} "
                + (
                    f"error: {record['error']}"
                    if "error" in record
                    else f"seconds {record['seconds']}, epochs {record['epochs_run']}, "
                    f"final acc {record['final_acc']:.3f}"
                )
            )
    rows = aggregate(libraries, records, envs)
    print_table(rows, args.target)
    drv.write_json(args.out, rows)
    drv.write_json(
        args.out.with_suffix(".meta.json"),
        {
            "command": "python benchmarks/time_to_accuracy.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "wall_s": time.time() - started,
            "machine": drv.machine(),
            "seeds": args.seeds,
            "max_epochs": args.max_epochs,
            "target": args.target,
            "environments": {lib: {"reason": env.reason} for lib, env in envs.items()},
            "runs": records,
        },
    )
    if not args.no_plot:
        plot(rows, records, args.target, args.out.with_suffix(".png"))
    drv.log(f"wrote {args.out} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
