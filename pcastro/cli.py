"""The `pcastro` command: `pcastro oneshot` (the main job), `pcastro interrupt` and
`pcastro continual`."""

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

C = TypeVar("C")


def _subcommand(sub, name: str, config_cls, *, default_out: str, **parser_kwargs) -> None:
    """A subcommand whose options are generated from `config_cls`, plus `--out` and
    `--no-progress`."""
    from .bench._config import add_config_options

    p = sub.add_parser(name, **parser_kwargs)
    add_config_options(p, config_cls)
    p.add_argument("--out", default=None, help=f"output folder (default {default_out})")
    _common_options(p)


def _default_cache() -> str:
    """The user's cache folder for compiled programs (`$XDG_CACHE_HOME/pcastro/jax`), or
    `PCASTRO_COMPILATION_CACHE` (`off` turns the cache off)."""
    if "PCASTRO_COMPILATION_CACHE" in os.environ:
        return os.environ["PCASTRO_COMPILATION_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pcastro", "jax")


def _shown(folder: str | None) -> str | None:
    """A folder as recorded in `results.json`: under the user's home as `~/...`, so a
    record names the setting, not the machine's home path."""
    if folder is None:
        return None
    home = os.path.expanduser("~")
    if home not in ("", "/") and (folder == home or folder.startswith(home + os.sep)):
        return "~" + folder[len(home) :]
    return folder


def _use_compilation_cache(args) -> str | None:
    """Turn on JAX's persistent compilation cache (warm starts: a second run compiles
    nothing it compiled before), unless `--no-compilation-cache`; returns its folder."""
    folder = None if args.no_compilation_cache else (args.compilation_cache or _default_cache())
    if folder in (None, "", "off"):
        return None
    import jax

    Path(folder).expanduser().mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(Path(folder).expanduser()))
    # Every program, however quick to compile: the one-shot protocols compile many.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return str(Path(folder).expanduser())


def _common_options(p) -> None:
    p.add_argument(
        "--compilation-cache",
        default=None,
        metavar="DIR",
        help="folder of JAX's persistent compilation cache (default: the user's cache "
        "folder, ~/.cache/pcastro/jax, or PCASTRO_COMPILATION_CACHE); a second run "
        "compiles nothing it compiled before",
    )
    p.add_argument(
        "--no-compilation-cache",
        action="store_true",
        help="compile everything from scratch (cold start, as the benchmarks time it)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in the output folder (otherwise an "
        "explicit --out that holds one is refused, and a default folder that holds one is "
        "left alone: the run goes to DEFAULT-2, DEFAULT-3, ...)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g = p.add_argument_group(
        "several processes (jax.distributed)",
        "One process per host (or per GPU), each running the same command: the episodes or "
        "seeds are split over the devices of every process, and process 0 alone prints and "
        "writes the results. Give all three options in every process, or none: under "
        "SLURM's srun or Open MPI's mpirun with more than one task, JAX reads them from the "
        "launcher (--num-processes 1 keeps each task on its own).",
    )
    g.add_argument(
        "--coordinator", default=None, metavar="HOST:PORT",
        help="process 0's host and a free port, the same in every process",
    )  # fmt: skip
    g.add_argument("--num-processes", type=int, default=None, metavar="N", help="processes")
    g.add_argument(
        "--process-id", type=int, default=None, metavar="I",
        help="this process's rank, from 0 to N-1",
    )  # fmt: skip


def _prepare(args, make_config: Callable[[argparse.Namespace], C], out_pattern: str):
    """The validated config (`make_config` of the parsed options) and output folder, both
    checked before any work is done."""
    from .bench._config import DATASETS

    if args.dataset not in DATASETS:
        raise SystemExit(
            f"pcastro {args.command}: unknown dataset {args.dataset!r}; choose one of "
            f"{', '.join(DATASETS)} (digits and mnist5k need no download)."
        )
    cfg = make_config(args)
    fields = {**vars(cfg), "protocol": getattr(cfg, "protocol", None)}
    return cfg, _checked_output_dir(args, out_pattern.format(**fields))


def _checked_output_dir(args, default: str) -> Path | None:
    """The output folder, checked (and created) before any work, so that none is ever
    lost. Only process 0 writes: in a run over several processes the others get None,
    and stop with process 0 when it refuses the folder."""
    from .bench._report import check_output_dir

    if not args.main_process:
        if not _all_agree(args, True):
            print(
                f"pcastro {args.command}: error: process 0 refused the output folder",
                file=sys.stderr,
            )
            raise SystemExit(2)
        return None
    try:
        out = _output_dir(args, default)
        check_output_dir(out, overwrite=args.overwrite)
    except ValueError:
        _all_agree(args, False)
        raise
    _all_agree(args, True)
    return out


def _all_agree(args, ok: bool) -> bool:
    """Process 0's `ok`, in every process of the run (collective: all must call it)."""
    if args.processes == 1:
        return ok
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


def _output_dir(args, default: str) -> Path:
    """`--out`, or the default folder; a default that holds an earlier run becomes the
    first free `DEFAULT-2`, `DEFAULT-3`, ... (an explicit `--out` is never renamed: it is
    refused unless `--overwrite`)."""
    if args.out:
        return Path(args.out)
    out = Path(default)
    if args.overwrite:
        return out
    n = 2
    while (out / "results.json").exists():
        out = Path(f"{default}-{n}")
        n += 1
    if out != Path(default):
        print(f"{default} holds an earlier run; writing to {out}", file=sys.stderr)
    return out


def _oneshot_parser(sub) -> None:
    from .bench._config import add_oneshot_options

    p = sub.add_parser(
        "oneshot",
        help="one-shot digit learning: PC, PC with astrocytes, backprop and baselines",
        description=(
            "N-way K-shot digit learning (scratch) or one-shot learning of novel digits "
            "5-9 after pretraining on 0-4 (transfer), or one-shot Omniglot (`--dataset "
            "omniglot`). Hyperparameters of every trained method are tuned on validation "
            "episodes drawn from the training split; test episodes come from the test "
            "split. Options marked [protocol] belong to that protocol's config only."
        ),
    )
    add_oneshot_options(p)
    default_out = "runs/oneshot-DATASET-PROTOCOL-sSEED"
    p.add_argument("--out", default=None, help=f"output folder (default {default_out})")
    _common_options(p)


def _run_oneshot(args, *, extra=None) -> int:
    from .bench import plot_results, run_oneshot
    from .bench._config import oneshot_config_from_args
    from .bench._report import format_selection, format_table, save_json

    cfg, out = _prepare(args, oneshot_config_from_args, "runs/oneshot-{dataset}-{protocol}-s{seed}")
    payload = run_oneshot(cfg, progress=not args.no_progress, extra=extra)
    timing = payload["details"]["timing"]
    rows = [
        {**r, "episodes/s": timing.get(r["method"], {}).get("episodes_per_s", float("nan"))}
        for r in payload["results"]
    ]
    task = (
        "Lake's 20 official 20-way runs and random 5-/20-way 1-shot episodes"
        if cfg.dataset == "omniglot"
        else f"{cfg.protocol}, {getattr(cfg, 'ways', 10)}-way {cfg.shots}-shot"
    )
    print(
        f"\none-shot on {cfg.dataset}: {task}, {cfg.episodes} test episodes, seed {cfg.seed}, "
        f"{_devices(payload)}"
    )
    print(format_table(rows, ["method", "metric", "mean", "ci95", "n", "episodes/s"]))
    for method, sel in payload["details"]["selected"].items():
        print(f"  {method}: selected on validation episodes {format_selection(sel)}")
    _print_paired(payload["details"].get("paired", []))
    # Where compiled programs came from: a warm cache changes the wall times, not results.
    payload["compilation_cache"] = _shown(args.cache_dir)
    payload["processes"] = args.processes
    if not args.main_process:
        return 0  # process 0 writes the results
    assert out is not None  # process 0 has its output folder
    path = save_json(out, payload)
    pngs = " and ".join(map(str, plot_results(path)))
    print(f"wrote {path} and {pngs} (total {payload['details']['wall_s']:.0f} s)")
    return 0


def _devices(payload) -> str:
    n = payload["devices"]
    return f"{n} device{'s' * (n > 1)} {payload['device']}"


def _print_paired(rows) -> None:
    """Paired differences (same episodes) of every PC method minus the best baseline."""
    from .bench._report import format_table

    if not rows:
        return
    print(f"\npaired differences, PC method minus the best baseline ({rows[0]['vs']}), 95% CI:")
    print(format_table(rows, ["method", "vs", "metric", "diff", "ci95", "n"]))


def _interrupt_parser(sub) -> None:
    from .bench import InterruptConfig

    _subcommand(
        sub,
        "interrupt",
        InterruptConfig,
        default_out="runs/interrupt-DATASET-sSEED",
        help="interrupted one-shot learning: learn A, interrupt with B, recall and consolidate A",
        description=(
            "Task A = digits 0-4, task B = digits 5-9, one shared 10-way output. Accuracy on "
            "A and B after every phase for backprop (sequential, interrupted, joint, with "
            "replay), PC without store, PC with plain interleaved replay (the control), PC "
            "with the store (stored and fresh starts), with NE gating, without NE, with "
            "astrocytes ablated, and pixel nearest neighbour."
        ),
    )


def _run_interrupt(args) -> int:
    from .bench import InterruptConfig, plot_results, run_interrupt
    from .bench._config import config_from_args
    from .bench._report import format_selection, format_table, save_json

    cfg, out = _prepare(
        args, lambda a: config_from_args(InterruptConfig, a), "runs/interrupt-{dataset}-s{seed}"
    )
    payload = run_interrupt(cfg, progress=not args.no_progress)
    table: dict[str, dict] = {}
    for r in payload["results"]:
        row = table.setdefault(r["method"], {"method": r["method"]})
        row[f"{r['phase']}:{r['task']}"] = f"{r['mean']:.2f}±{r['ci95']:.2f}"
    columns = ["method"] + [f"{p}:{t}" for p in ("A_k", "B", "final") for t in ("A", "B")]
    print(
        f"\ninterrupted one-shot learning on {cfg.dataset}: {cfg.shots}-shot, "
        f"{cfg.episodes} test episodes, seed {cfg.seed}, {_devices(payload)} "
        "(accuracy on task A and B after each phase, mean±95% CI)"
    )
    print(format_table(list(table.values()), columns))
    for name, sel in payload["details"]["selected"].items():
        print(f"  {name}: selected on validation episodes {format_selection(sel)}")
    print(
        "\npaired differences after the final phase (same episodes), mean±95% CI; "
        "* = the CI excludes 0"
    )
    paired = [
        {
            "condition − control": f"{r['method']} − {r['vs']}",
            "task": r["task"],
            "diff": f"{r['diff']:+.3f}±{r['ci95']:.3f}" + "*" * (abs(r["diff"]) > r["ci95"]),
        }
        for r in payload["paired"]
    ]
    print(format_table(paired, ["condition − control", "task", "diff"]))
    # Where compiled programs came from: a warm cache changes the wall times, not results.
    payload["compilation_cache"] = _shown(args.cache_dir)
    payload["processes"] = args.processes
    if not args.main_process:
        return 0  # process 0 writes the results
    assert out is not None  # process 0 has its output folder
    path = save_json(out, payload)
    (png,) = plot_results(path)
    print(f"wrote {path} and {png} (total {payload['details']['wall_s']:.0f} s)")
    return 0


def _continual_parser(sub) -> None:
    from .bench import ContinualConfig
    from .bench._config import add_config_options

    p = sub.add_parser(
        "continual",
        help="split-MNIST class-incremental learning: PC and backprop, replay, the store",
        description=(
            "Five contexts (0,1), (2,3), (4,5), (6,7), (8,9) learned one after another with "
            "one shared 10-way output and no context label at test time (van de Ven & "
            "Tolias 2019). Fine-tuning, joint training, experience replay, loss-prioritised "
            "replay and the astrocyte store (variants) at equal memory bytes, PC and "
            "backprop on the same modules; hyperparameters selected on a validation split "
            "of the training images; accuracy matrix, curves, paired differences."
        ),
    )
    add_config_options(p, ContinualConfig)
    p.add_argument(
        "--out", default=None, help="output folder (default runs/continual-DATASET-sSEED)"
    )
    _common_options(p)


def _run_continual(args) -> int:
    from .bench import ContinualConfig, run_continual
    from .bench._config import config_from_args
    from .bench._continual_report import result_table, write_outputs
    from .bench._report import save_json

    cfg = config_from_args(ContinualConfig, args)
    out = _checked_output_dir(args, f"runs/continual-{cfg.dataset}-s{cfg.seed}")
    payload = run_continual(cfg, progress=not args.no_progress)
    print(
        f"\nsplit-{cfg.dataset} class-incremental: {cfg.iterations} iterations per context, "
        f"{cfg.seeds} seeds, {_devices(payload)} (final accuracy, mean ± 95% CI)"
    )
    print(result_table(payload))
    # Where compiled programs came from: a warm cache changes the wall times, not results.
    payload["compilation_cache"] = _shown(args.cache_dir)
    payload["processes"] = args.processes
    if not args.main_process:
        return 0  # process 0 writes the results
    assert out is not None  # process 0 has its output folder
    path = save_json(out, payload)
    write_outputs(out, payload)
    print(f"wrote {path} and figures in {out} (total {payload['details']['wall_s']:.0f} s)")
    return 0


def main(argv=None, *, extra=None) -> int:
    """The `pcastro` command on `argv` (default: the process's arguments); its exit code.

    `extra`: a script's own one-shot learners besides the registered methods (see
    [`pcastro.bench.run_oneshot`][]), for `oneshot` on digits and MNIST; recorded under
    their own names and the script's command (see `benchmarks/oneshot_diagnostics.py`).
    """
    parser = argparse.ArgumentParser(
        prog="pcastro",
        description="Predictive coding with astrocytes: one-shot learning benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _oneshot_parser(sub)
    _interrupt_parser(sub)
    _continual_parser(sub)
    args = parser.parse_args(argv)
    if args.methods == ("list",):  # what each name means, before any work
        from .bench._methods import format_methods

        print(format_methods(args.command))
        return 0
    if extra is not None and args.command != "oneshot":
        print(f"pcastro {args.command}: error: own learners run in `oneshot` only", file=sys.stderr)
        return 2
    run = {
        "oneshot": lambda a: _run_oneshot(a, extra=extra),
        "interrupt": _run_interrupt,
        "continual": _run_continual,
    }
    try:
        _start(args)
        with _quiet(not args.main_process):
            return run[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"pcastro {args.command}: error: {err}", file=sys.stderr)
        return 2


def _start(args) -> None:
    """Before any JAX computation: the compilation cache, and the other processes of a
    run over several (`jax.distributed`); sets `args.cache_dir`, `args.processes` and
    `args.main_process` (process 0, the one that prints and writes)."""
    from ._distributed import check_process_options, start_processes

    check_process_options(args.coordinator, args.num_processes, args.process_id)
    args.cache_dir = _use_compilation_cache(args)
    args.processes = start_processes(
        coordinator=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
    )
    args.main_process = True
    if args.processes > 1:
        import jax

        args.main_process = jax.process_index() == 0
    if not args.main_process:
        args.no_progress = True


@contextlib.contextmanager
def _quiet(quiet: bool):
    """Nothing on stdout while `quiet` (the processes other than 0 of a run over several),
    not even what the collectives' C++ libraries print; errors still reach stderr."""
    if not quiet:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
