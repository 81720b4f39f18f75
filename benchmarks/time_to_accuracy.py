"""Time to a target test accuracy, per PC library, on sklearn digits or full MNIST.

`--workload digits` (default): MLP 64-256-256-10 (tanh hidden, identity output, Gaussian
energies) on sklearn's digits (values/16, 80/20 stratified split, random_state=0), batch
64, Adam(1e-3), target 95%. `--workload mnist`: the MLP 784-128-128-128-10 (GELU hidden)
of the pcx benchmark paper (Pinchetti et al., ICLR 2025) on full MNIST (the official
60,000/10,000 split, read with `pcastro.data.load_dataset` from `--data-dir` or
`PCASTRO_DATA`, pixels rescaled to [-1, 1]), batch 128, target 98%. Each library uses its
documented setting for the workload (the adapter records it in `setting`; pcastro's and,
on MNIST, backprop's were chosen on a validation split by `benchmarks/select_tta_setting.py`).
On MNIST `--setting-for LIB=NAME` runs a library on a named setting of
`benchmarks/adapters/_tta_settings.py` (pcastro, pcx and backprop), so libraries can be
timed on one and the same setting. Wall time runs from
the start of training (compile included; compile time also reported apart) until the test
accuracy, evaluated once per epoch by a feedforward pass over all test images, first
reaches `--target`; `--max-epochs` caps the run and such a seed reports `null` seconds.
Median over `--seeds` seeds (interleaved round-robin over libraries; a seed that never
reaches the target counts as slower than any that does).

Cold numbers are the default: every process compiles from scratch. `--compilation-cache
DIR` turns on JAX's persistent compilation cache in DIR (opt-in, for repeated runs): one
untimed one-epoch run per library fills it first, so every timed run is warm; the results
go to a separate file (`*_cached.json`) and are never mixed with the cold ones.

    python benchmarks/time_to_accuracy.py --seeds 3
    python benchmarks/time_to_accuracy.py --workload mnist --data-dir DIR --seeds 3
    python benchmarks/time_to_accuracy.py --quick --libraries lean,backprop
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "adapters"))

import _driver as drv  # noqa: E402

WORKLOADS: dict[str, dict[str, Any]] = {
    "digits": {
        "target": 0.95,
        "fallback_targets": "",
        "max_epochs": 50,
        "out": "time_to_accuracy",
        "title": "sklearn digits, MLP 64-256-256-10, batch 64 (CPU)",
    },
    "mnist": {
        "target": 0.98,
        "fallback_targets": "0.975,0.97,0.965,0.96",
        "max_epochs": 30,
        "out": "time_to_accuracy_mnist",
        "title": "MNIST, MLP 784-128-128-128-10 (GELU), batch 128 (CPU)",
    },
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="digits")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with the MNIST IDX files (mnist; default: the PCASTRO_DATA variable)",
    )
    parser.add_argument("--libraries", default=",".join(drv.LIBRARIES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=None, help="default 50 / 30 (mnist)")
    parser.add_argument(
        "--max-epochs-for",
        default="",
        help="per-library caps overriding --max-epochs, e.g. ngclearn=10,jpc=5",
    )
    parser.add_argument("--target", type=float, default=None, help="default 0.95 / 0.98 (mnist)")
    parser.add_argument(
        "--fallback-targets",
        default=None,
        help="lower targets, highest first, read off the same runs when some library's median "
        "misses --target; the highest one every library reaches is reported "
        "(default none / 0.975,0.97 for mnist)",
    )
    parser.add_argument(
        "--setting-for",
        default="",
        help="named settings per library, e.g. pcastro=pcx-paper,backprop=pcx-paper (mnist: "
        "benchmarks/adapters/_tta_settings.py)",
    )
    parser.add_argument(
        "--compilation-cache",
        type=Path,
        default=None,
        help="opt-in persistent JAX compilation cache folder; results go to *_cached.json",
    )
    parser.add_argument("--cache", type=Path, default=drv.default_cache())
    parser.add_argument("--jpc-source", default=None, help="pip-installable path or URL")
    parser.add_argument(
        "--jpc-source-note",
        default=None,
        help="what to record for --jpc-source instead of its path, e.g. "
        "'jpc from source, commit <sha>'",
    )
    parser.add_argument("--reinstall", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per process, seconds")
    parser.add_argument("--out", type=Path, default=None, help="default from the workload")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 seed, 2 epochs")
    parser.add_argument(
        "--from-runs",
        type=Path,
        default=None,
        help="re-aggregate the runs of an earlier .meta.json instead of running anything",
    )
    args = parser.parse_args(argv)
    defaults = WORKLOADS[args.workload]
    if args.max_epochs is None:
        args.max_epochs = defaults["max_epochs"]
    if args.target is None:
        args.target = defaults["target"]
    if args.fallback_targets is None:
        args.fallback_targets = defaults["fallback_targets"]
    args.fallback_targets = sorted(
        (float(t) for t in str(args.fallback_targets).split(",") if t.strip()), reverse=True
    )
    if any(t >= args.target for t in args.fallback_targets):
        raise SystemExit("--fallback-targets must be below --target")
    if args.quick:
        args.seeds, args.max_epochs = 1, 2
    if args.out is None:
        name = defaults["out"] + ("_cached" if args.compilation_cache else "")
        args.out = drv.RESULTS_DIR / f"{name}.json"
    args.epoch_caps = parse_caps(args.max_epochs_for, default=args.max_epochs)
    args.settings = dict(
        item.strip().split("=", 1) for item in args.setting_for.split(",") if item.strip()
    )
    if args.quick:
        args.epoch_caps = {}
    return args


def parse_caps(text: str, *, default: int) -> dict[str, int]:
    """`"ngclearn=10,jpc=5"` -> `{"ngclearn": 10, "jpc": 5}` (each below the default)."""
    caps = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        lib, _, value = item.partition("=")
        if lib not in drv.LIBRARIES or not value.isdigit():
            raise SystemExit(f"--max-epochs-for: expected LIB=N with LIB in {drv.LIBRARIES}")
        caps[lib] = min(int(value), default)
    return caps


def median_seconds(values: list[float | None]) -> float | None:
    """Median with unreached seeds as +inf: null when at least half never got there."""
    if not values:
        return None
    ranked = sorted(math.inf if v is None else v for v in values)
    mid = statistics.median(ranked)
    return None if math.isinf(mid) else mid


def at_target(record: dict, target: float) -> tuple[float | None, int | None]:
    """(wall seconds, epochs) until the record's test accuracy first reached `target`, read
    off its per-epoch curve; a target above the one the run stopped at is not known."""
    if target > record.get("target_acc", target):
        raise ValueError(f"the run stopped at {record['target_acc']}, above {target} unknown")
    curve, elapsed = record.get("test_acc_curve") or [], record.get("elapsed_s_curve")
    if elapsed is None:  # records written before the elapsed curve was kept
        return record.get("seconds"), record.get("epochs")
    for epoch, (acc, seconds) in enumerate(zip(curve, elapsed), start=1):
        if acc >= target:
            return seconds, epoch
    return None, None


def aggregate(
    libraries: list[str], records: list[dict], envs: dict, target: float
) -> list[dict[str, Any]]:
    rows = []
    for lib in libraries:
        runs = [r for r in records if r.get("library") == lib]
        ok = [r for r in runs if "error" not in r]
        hits = [at_target(r, target) for r in ok]
        reached = [epochs for seconds, epochs in hits if seconds is not None]
        row: dict[str, Any] = {
            "library": lib,
            "target": target,
            "seconds": median_seconds([seconds for seconds, _ in hits]),
            "compile_s": drv.median([r.get("compile_s") for r in ok]),
            "epochs": drv.median(reached) if reached else None,
            "final_acc": drv.median([r.get("final_acc") for r in ok]),
            "setting": ok[0].get("setting") if ok else None,
            "versions": ok[0].get("versions") if ok else None,
        }
        if ok:
            row.update(
                {
                    "seeds": [r["seed"] for r in ok],
                    "seconds_per_seed": [seconds for seconds, _ in hits],
                    "epochs_per_seed": [epochs for _, epochs in hits],
                    "compile_s_per_seed": [r.get("compile_s") for r in ok],
                    "final_acc_per_seed": [r.get("final_acc") for r in ok],
                    "reached": f"{len(reached)}/{len(ok)}",
                    "max_epochs": max(r.get("epochs_run", 0) for r in ok),
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


def common_target(rows_by_target: dict[float, list[dict]]) -> float:
    """The highest target whose median every library that ran reaches (else the lowest)."""
    targets = sorted(rows_by_target, reverse=True)
    for target in targets:
        ran = [r for r in rows_by_target[target] if "error" not in r]
        if ran and all(r["seconds"] is not None for r in ran):
            return target
    return targets[-1]


def report(args, libraries, records, envs) -> tuple[float, list[dict]]:
    """Rows at the reported target, each with its results at every target tried."""
    rows_by_target = {
        t: aggregate(libraries, records, envs, t) for t in [args.target, *args.fallback_targets]
    }
    target = common_target(rows_by_target)
    rows = rows_by_target[target]
    for i, row in enumerate(rows):
        row["by_target"] = {
            format(t, "g"): {
                k: other[i].get(k)
                for k in ("seconds", "epochs", "reached", "seconds_per_seed", "epochs_per_seed")
            }
            for t, other in rows_by_target.items()
        }
    return target, rows


def percent(value: float) -> str:
    return f"{100 * value:g}%"


def print_table(rows: list[dict], target: float) -> None:
    head = (
        f"{'library':<10} {'s to ' + percent(target):>9} {'compile s':>9} {'epochs':>6} "
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


def plot(rows: list[dict], records: list[dict], target: float, path: Path, title: str) -> None:
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
    ax_bar.set_xlabel(f"wall s to {percent(target)} test accuracy (median over seeds)")
    ax_bar.margins(x=0.3)
    for k, lib in enumerate(names):
        runs = [r for r in records if r.get("library") == lib and "error" not in r]
        for n, run in enumerate(runs):
            # Test accuracy against wall time (compile included), one line per seed.
            x = run.get("elapsed_s_curve") or range(1, len(run["test_acc_curve"]) + 1)
            ax_curve.plot(
                x, run["test_acc_curve"], color=f"C{k}", lw=1.2, alpha=0.8, label=None if n else lib
            )
    ax_curve.axhline(target, color="k", lw=0.8, ls="--")
    run_target = max((r.get("target_acc", target) for r in records), default=target)
    if run_target > target:  # the target the runs aimed at, which not every library reached
        ax_curve.axhline(run_target, color="k", lw=0.8, ls=":")
    elapsed = any(r.get("elapsed_s_curve") for r in records)
    ax_curve.set_xlabel("wall s since the start of training" if elapsed else "epoch")
    ax_curve.set_ylabel("test accuracy after each epoch (each seed, until stop)")
    accs = [a for r in records for a in r.get("test_acc_curve") or []]
    if accs:
        top = max(max(accs), run_target) + 0.005
        ax_curve.set_ylim(max(min(accs), target - 0.05), min(1.0, top))
    ax_curve.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def recorded_argv() -> list[str]:
    """The command line with machine paths left out (--jpc-source, its note, --cache)."""
    out, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--jpc-source", "--jpc-source-note", "--cache", "--compilation-cache"):
            out.append(f"{name} <{name[2:]}>")
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def adapter_cli(args, seed: int, data: Path, max_epochs: int, lib: str) -> list[str]:
    cli = [
        "--workload", args.workload,
        "--mode", "tta",
        "--seed", str(seed),
        "--data", str(data),
        "--max-epochs", str(max_epochs),
        "--target-acc", str(args.target),
    ]  # fmt: skip
    if lib in args.settings:
        cli += ["--setting", args.settings[lib]]
    if args.compilation_cache is not None:
        cli += ["--compilation-cache", str(args.compilation_cache.expanduser().resolve())]
    return cli


def fill_compilation_cache(args, libraries, envs, data: Path, cache: Path) -> dict[str, Any]:
    """One untimed one-epoch run per library, so that every timed run finds its programs
    in the persistent cache (the cache key does not depend on the seed)."""
    primed = {}
    for lib in libraries:
        record = drv.run_adapter(
            envs[lib],
            adapter_cli(args, 0, data, 1, lib),
            cache=cache,
            timeout=args.timeout,
            tag=f"tta-{args.workload}-{lib}-prime",
        )
        primed[lib] = {"compile_s": record.get("compile_s"), "error": record.get("error")}
        drv.log(f"[prime] {lib:<9} compile {record.get('compile_s')} {record.get('error') or ''}")
    return primed


def main(argv=None) -> int:
    args = parse_args(argv)
    libraries = drv.parse_libraries(args.libraries)
    cache = args.cache.expanduser()
    title = WORKLOADS[args.workload]["title"]
    if args.compilation_cache is not None:
        title += ", warm persistent compilation cache"
    started = time.time()
    if args.from_runs is not None:
        meta = json.loads(args.from_runs.read_text())
        records = meta["runs"]
        envs = {
            lib: drv.Env(lib, None, reason=meta["environments"].get(lib, {}).get("reason"))
            for lib in libraries
        }
        target, rows = report(args, libraries, records, envs)
        print_table(rows, target)
        drv.write_json(args.out, rows)
        meta.update(
            {
                "fallback_targets": args.fallback_targets,
                "target_reported": target,
                "aggregated_by": "python benchmarks/time_to_accuracy.py "
                + " ".join(recorded_argv()),
            }
        )
        drv.write_json(args.out.with_suffix(".meta.json"), meta)
        if not args.no_plot:
            plot(rows, records, target, args.out.with_suffix(".png"), title)
        return 0
    if args.workload == "mnist":
        data = drv.prepare_mnist(cache, args.data_dir)
    else:
        data = drv.prepare_digits(cache)
    envs = {
        lib: drv.ensure_env(lib, cache, jpc_source=args.jpc_source, reinstall=args.reinstall)
        for lib in libraries
    }
    for lib, env in envs.items():
        if env.reason:
            drv.log(f"[skip] {lib}: {env.reason}")
    runnable = [lib for lib in libraries if envs[lib].python]
    load_start = os.getloadavg()
    primed = None
    if args.compilation_cache is not None:
        primed = fill_compilation_cache(args, runnable, envs, data, cache)
    records = []
    for seed, order in drv.interleaved(runnable, args.seeds):
        for lib in order:
            max_epochs = args.epoch_caps.get(lib, args.max_epochs)
            record = drv.run_adapter(
                envs[lib],
                adapter_cli(args, seed, data, max_epochs, lib),
                cache=cache,
                timeout=args.timeout,
                tag=f"tta-{args.workload}-{lib}-s{seed}",
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
    load_end = os.getloadavg()
    target, rows = report(args, libraries, records, envs)
    print_table(rows, target)
    drv.write_json(args.out, rows)
    drv.write_json(
        args.out.with_suffix(".meta.json"),
        {
            "command": "python benchmarks/time_to_accuracy.py " + " ".join(recorded_argv()),
            "jpc_source": (args.jpc_source_note or "a local path (not recorded)")
            if args.jpc_source
            else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "wall_s": time.time() - started,
            "machine": drv.machine(),
            "workload": args.workload,
            "seeds": args.seeds,
            "max_epochs": args.max_epochs,
            "max_epochs_per_library": {
                lib: args.epoch_caps.get(lib, args.max_epochs) for lib in libraries
            },
            "target": args.target,
            "fallback_targets": args.fallback_targets,
            "target_reported": target,
            "evaluation": "test accuracy once per epoch, feedforward pass over all test images",
            "load_avg_at_start": list(load_start),
            "load_avg_at_end": list(load_end),
            "compilation_cache": primed is not None,
            "compilation_cache_fill": primed,
            "environments": {lib: {"reason": env.reason} for lib, env in envs.items()},
            "runs": records,
        },
    )
    if not args.no_plot:
        plot(rows, records, target, args.out.with_suffix(".png"), title)
    drv.log(f"wrote {args.out} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
