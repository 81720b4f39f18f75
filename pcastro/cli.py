"""The `pcastro` command: `pcastro oneshot` (the main job) and `pcastro interrupt`."""

import argparse
import sys
from pathlib import Path


def _oneshot_parser(sub) -> None:
    from .bench import OneShotConfig
    from .bench._config import add_config_options

    p = sub.add_parser(
        "oneshot",
        help="one-shot digit learning: PC, PC with astrocytes, backprop and baselines",
        description=(
            "N-way K-shot digit learning (scratch) or one-shot learning of novel digits "
            "5-9 after pretraining on 0-4 (transfer). Hyperparameters of every trained "
            "method are tuned on validation episodes drawn from the training split; test "
            "episodes come from the test split."
        ),
    )
    add_config_options(p, OneShotConfig)
    p.add_argument(
        "--out", default=None, help="output folder (default runs/oneshot-DATASET-PROTOCOL-sSEED)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _run_oneshot(args) -> int:
    from .bench import OneShotConfig, run_oneshot
    from .bench._config import DATASETS, config_from_args
    from .bench._report import bar_chart, check_output_dir, format_table, save_json

    if args.dataset not in DATASETS:
        raise SystemExit(
            f"pcastro oneshot: unknown dataset {args.dataset!r}; choose one of "
            f"{', '.join(DATASETS)} (digits and mnist5k need no download)."
        )
    cfg = config_from_args(OneShotConfig, args)
    out = Path(args.out or f"runs/oneshot-{cfg.dataset}-{cfg.protocol}-s{cfg.seed}")
    check_output_dir(out)  # before the work, so that finished work is never lost
    payload = run_oneshot(cfg, progress=not args.no_progress)
    timing = payload["details"]["timing"]
    rows = [
        {**r, "episodes/s": timing.get(r["method"], {}).get("episodes_per_s", float("nan"))}
        for r in payload["results"]
    ]
    task = (
        "Lake's 20 official 20-way runs and random 5-/20-way 1-shot episodes"
        if cfg.dataset == "omniglot"
        else f"{cfg.protocol}, {cfg.ways}-way {cfg.shots}-shot"
    )
    print(
        f"\none-shot on {cfg.dataset}: {task}, {cfg.episodes} test episodes, seed {cfg.seed}, "
        f"device {payload['device']}"
    )
    print(format_table(rows, ["method", "metric", "mean", "ci95", "n", "episodes/s"]))
    for method, sel in payload["details"]["selected"].items():
        print(f"  {method}: selected on validation episodes {sel}")
    _print_paired(payload["details"].get("paired", []))
    path = save_json(out, payload)
    groups: dict[str, list[dict]] = {}
    for r in payload["results"]:
        groups.setdefault(r["metric"], []).append(r)
    png = bar_chart(
        out / "results.png",
        groups,
        title=f"{cfg.protocol} one-shot, {cfg.dataset}, {cfg.ways}-way {cfg.shots}-shot "
        f"(mean, 95% CI over {cfg.episodes} episodes)",
        ylabel="accuracy",
    )
    if payload["details"].get("frontier"):
        from .bench._compare import frontier_chart

        fpng = frontier_chart(
            out / "frontier.png",
            payload["details"]["frontier"],
            title=f"{cfg.protocol} one-shot, {cfg.dataset}: every grid point on the first "
            f"{min(cfg.frontier_episodes, cfg.episodes)} test episodes (mean), frontier per "
            "method, star = chosen on validation",
        )
        print(f"wrote {fpng}")
    print(f"wrote {path} and {png} (total {payload['details']['wall_s']:.0f} s)")
    return 0


def _print_paired(rows) -> None:
    """Paired differences (same episodes) of every PC method minus the best baseline."""
    from .bench._report import format_table

    if not rows:
        return
    print(f"\npaired differences, PC method minus the best baseline ({rows[0]['vs']}), 95% CI:")
    print(format_table(rows, ["method", "vs", "metric", "diff", "ci95", "n"]))


def _interrupt_parser(sub) -> None:
    from .bench import InterruptConfig
    from .bench._config import add_config_options

    p = sub.add_parser(
        "interrupt",
        help="interrupted one-shot learning: learn A, interrupt with B, recall and consolidate A",
        description=(
            "Task A = digits 0-4, task B = digits 5-9, one shared 10-way output. Accuracy on "
            "A and B after every phase for backprop (sequential, interrupted, joint, with "
            "replay), PC without store, PC with plain interleaved replay (the control), PC "
            "with the store (stored and fresh starts), with NE gating, without NE, with "
            "astrocytes ablated, and pixel nearest neighbour."
        ),
    )
    add_config_options(p, InterruptConfig)
    p.add_argument(
        "--out", default=None, help="output folder (default runs/interrupt-DATASET-sSEED)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _run_interrupt(args) -> int:
    from .bench import InterruptConfig, run_interrupt
    from .bench._config import DATASETS, config_from_args
    from .bench._report import check_output_dir, format_table, interrupt_chart, save_json

    if args.dataset not in DATASETS:
        raise SystemExit(
            f"pcastro interrupt: unknown dataset {args.dataset!r}; choose one of "
            f"{', '.join(DATASETS)} (digits and mnist5k need no download)."
        )
    cfg = config_from_args(InterruptConfig, args)
    out = Path(args.out or f"runs/interrupt-{cfg.dataset}-s{cfg.seed}")
    check_output_dir(out)  # before the work, so that finished work is never lost
    payload = run_interrupt(cfg, progress=not args.no_progress)
    table: dict[str, dict] = {}
    for r in payload["results"]:
        row = table.setdefault(r["method"], {"method": r["method"]})
        row[f"{r['phase']}:{r['task']}"] = f"{r['mean']:.2f}±{r['ci95']:.2f}"
    columns = ["method"] + [f"{p}:{t}" for p in ("A_k", "B", "final") for t in ("A", "B")]
    print(
        f"\ninterrupted one-shot learning on {cfg.dataset}: {cfg.shots}-shot, "
        f"{cfg.episodes} test episodes, seed {cfg.seed}, device {payload['device']} "
        "(accuracy on task A and B after each phase, mean±95% CI)"
    )
    print(format_table(list(table.values()), columns))
    for name, sel in payload["details"]["selected"].items():
        print(f"  {name}: selected on validation episodes {sel}")
    path = save_json(out, payload)
    png = interrupt_chart(
        out / "results.png",
        payload["results"],
        title=(f"interrupted learning, {cfg.dataset}, {cfg.episodes} episodes (mean, 95% CI)"),
    )
    print(f"wrote {path} and {png} (total {payload['details']['wall_s']:.0f} s)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="pcastro",
        description="Predictive coding with astrocytes: one-shot learning benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _oneshot_parser(sub)
    _interrupt_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "oneshot":
            return _run_oneshot(args)
        if args.command == "interrupt":
            return _run_interrupt(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"pcastro {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
