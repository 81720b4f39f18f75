"""The `pcastro` command: `pcastro oneshot` (the main job) and `pcastro interrupt`."""

import argparse
import sys
from pathlib import Path

DATASETS = ("digits", "mnist5k", "mnist", "fashion")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _oneshot_parser(sub) -> None:
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
    p.add_argument(
        "--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default digits)"
    )
    p.add_argument("--protocol", default="scratch", choices=("scratch", "transfer"))
    p.add_argument("--ways", type=int, default=10)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15, help="query images per class")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--val-episodes", type=int, default=10, help="validation episodes for tuning")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--lrs", type=_floats, default=(1e-3, 3e-3, 1e-2, 3e-2), help="learning-rate grid"
    )
    p.add_argument(
        "--max-updates", type=int, default=100, help="largest update count tried (scratch)"
    )
    p.add_argument("--inference-steps", type=int, default=20)
    p.add_argument("--pretrain-epochs", type=int, default=10, help="base pretraining (transfer)")
    p.add_argument(
        "--updates-per-example", type=_ints, default=(1, 3, 10, 30), help="grid (transfer)"
    )
    p.add_argument(
        "--methods",
        type=_names,
        default=(),
        help="comma-separated subset of the trained methods (default all)",
    )
    p.add_argument(
        "--astro-rounds",
        type=_ints,
        default=(1, 3, 10, 30),
        help="consolidation rounds grid (PC with astrocytes)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with MNIST/Fashion-MNIST IDX files (or set PCASTRO_DATA)",
    )
    p.add_argument(
        "--out", default=None, help="output folder (default runs/oneshot-DATASET-PROTOCOL-sSEED)"
    )
    p.add_argument("--no-progress", action="store_true")


def _run_oneshot(args) -> int:
    from .bench import OneShotConfig, run_oneshot
    from .bench._report import bar_chart, format_table, save_json

    if args.dataset not in DATASETS:
        raise SystemExit(
            f"pcastro oneshot: unknown dataset {args.dataset!r}; choose one of "
            f"{', '.join(DATASETS)} (digits and mnist5k need no download)."
        )
    cfg = OneShotConfig(
        dataset=args.dataset,
        protocol=args.protocol,
        ways=args.ways,
        shots=args.shots,
        queries=args.queries,
        episodes=args.episodes,
        val_episodes=args.val_episodes,
        seed=args.seed,
        lrs=args.lrs,
        max_updates=args.max_updates,
        inference_steps=args.inference_steps,
        pretrain_epochs=args.pretrain_epochs,
        updates_per_example=args.updates_per_example,
        astro_rounds=args.astro_rounds,
        methods=args.methods,
        data_dir=args.data_dir,
    )
    payload = run_oneshot(cfg, progress=not args.no_progress)
    out = Path(args.out or f"runs/oneshot-{cfg.dataset}-{cfg.protocol}-s{cfg.seed}")
    timing = payload["details"]["timing"]
    rows = [
        {**r, "episodes/s": timing.get(r["method"], {}).get("episodes_per_s", float("nan"))}
        for r in payload["results"]
    ]
    print(
        f"\n{cfg.protocol} one-shot on {cfg.dataset}: {cfg.ways}-way {cfg.shots}-shot, "
        f"{cfg.episodes} test episodes, seed {cfg.seed}, device {payload['device']}"
    )
    print(format_table(rows, ["method", "metric", "mean", "ci95", "n", "episodes/s"]))
    for method, sel in payload["details"]["selected"].items():
        print(f"  {method}: selected on validation episodes {sel}")
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
    print(f"wrote {path} and {png} (total {payload['details']['wall_s']:.0f} s)")
    return 0


def _interrupt_parser(sub) -> None:
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
    p.add_argument("--dataset", default="digits", help="digits or mnist5k (also mnist, fashion)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--val-episodes", type=int, default=10)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-updates", type=int, default=40)
    p.add_argument("--inference-steps", type=int, default=20)
    p.add_argument(
        "--lrs", type=_floats, default=(1e-3, 3e-3, 1e-2, 3e-2), help="learning-rate grid"
    )
    p.add_argument(
        "--methods",
        type=_names,
        default=(),
        help="comma-separated subset of conditions (default all)",
    )
    p.add_argument(
        "--ne", type=float, default=1.0, help="norepinephrine at presentation and consolidation"
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument(
        "--out", default=None, help="output folder (default runs/interrupt-DATASET-sSEED)"
    )
    p.add_argument("--no-progress", action="store_true")


def _run_interrupt(args) -> int:
    from .bench import InterruptConfig, run_interrupt
    from .bench._report import format_table, interrupt_chart, save_json

    if args.dataset not in DATASETS:
        raise SystemExit(
            f"pcastro interrupt: unknown dataset {args.dataset!r}; choose one of "
            f"{', '.join(DATASETS)} (digits and mnist5k need no download)."
        )
    cfg = InterruptConfig(
        dataset=args.dataset,
        episodes=args.episodes,
        val_episodes=args.val_episodes,
        shots=args.shots,
        queries=args.queries,
        seed=args.seed,
        max_updates=args.max_updates,
        inference_steps=args.inference_steps,
        ne=args.ne,
        data_dir=args.data_dir,
        lrs=args.lrs,
        methods=args.methods,
    )
    payload = run_interrupt(cfg, progress=not args.no_progress)
    out = Path(args.out or f"runs/interrupt-{cfg.dataset}-s{cfg.seed}")
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
