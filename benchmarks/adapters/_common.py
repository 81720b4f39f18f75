"""Shared protocol for the library adapters of `benchmarks/compare_libraries.py`.

Every adapter is a standalone script, run inside its own library's virtual environment:

    python benchmarks/adapters/<lib>.py --workload {digits,mnist,large} \
        --mode {throughput,tta} --steps N --seed S --data PATH.npz

and prints exactly one JSON line on stdout (everything else the library prints is sent to
stderr). This module holds what the adapters share: the workload definition, the data, the
timing and the record. It imports only the standard library and numpy at module level (jax is
imported inside functions), so it works in every venv whatever jax version the library pins.

An adapter supplies one function and calls `main`:

    def make_trainer(spec: Workload, seed: int, mode: str) -> Trainer: ...

    if __name__ == "__main__":
        main(library="pcx", make_trainer=make_trainer, distributions=("pcx", "jax"))

`Trainer.step(x, y_onehot)` runs one full training step (feedforward init, `spec.steps`
inference steps of size `spec.dt`, one Adam(`spec.lr`) weight update) on a float32 batch of
exactly `spec.batch` rows and returns any array (or pytree of arrays) to block on;
`Trainer.predict(x)` returns the feedforward output (logits) for a batch of `spec.batch` rows.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import numpy as np

WORKLOADS: dict[str, dict[str, Any]] = {
    "digits": {"sizes": (64, 256, 256, 10), "batch": 64, "activation": "tanh"},
    # The MLP of the pcx benchmark paper (Pinchetti et al., ICLR 2025), on full MNIST.
    "mnist": {"sizes": (784, 128, 128, 128, 10), "batch": 128, "activation": "gelu"},
    "large": {"sizes": (784, 1024, 1024, 10), "batch": 256, "activation": "tanh"},
}
INFERENCE_STEPS = 20
INFERENCE_DT = 0.1
LEARNING_RATE = 1e-3
ACCURACY_EPOCHS = 5
LARGE_SAMPLES = 4096
LARGE_DATA_SEED = 1234


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark workload: layer sizes, hidden activation, batch and the PC rule.

    `epoch_steps` is the number of full batches per epoch of the training data (set once
    the data is loaded; learning-rate schedules that span epochs need it)."""

    name: str
    sizes: tuple[int, ...]
    batch: int
    activation: str = "tanh"
    epoch_steps: int | None = None
    setting: str | None = None  # a named alternative setting the adapter offers
    steps: int = INFERENCE_STEPS
    dt: float = INFERENCE_DT
    lr: float = LEARNING_RATE


@dataclasses.dataclass
class Trainer:
    """What an adapter hands back: one jitted train step and one feedforward prediction."""

    step: Callable[[np.ndarray, np.ndarray], Any]
    predict: Callable[[np.ndarray], Any]
    notes: str = ""
    setting: str = ""


def make_workload(name: str) -> Workload:
    spec = WORKLOADS[name]
    return Workload(
        name=name,
        sizes=tuple(spec["sizes"]),
        batch=int(spec["batch"]),
        activation=str(spec["activation"]),
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one library on one benchmark workload.")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="digits")
    parser.add_argument("--mode", choices=("throughput", "tta"), default="throughput")
    parser.add_argument("--steps", type=int, default=50, help="timed train steps (throughput)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after compile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=str, default=None, help="digits/mnist .npz (driver)")
    parser.add_argument("--accuracy-epochs", type=int, default=ACCURACY_EPOCHS)
    parser.add_argument("--max-epochs", type=int, default=50, help="tta: cap on epochs")
    parser.add_argument("--target-acc", type=float, default=0.95, help="tta: test accuracy")
    parser.add_argument(
        "--setting", default=None, help="a named alternative setting of this adapter (tta)"
    )
    parser.add_argument(
        "--compilation-cache",
        type=str,
        default=None,
        help="opt-in persistent JAX compilation cache folder (warm runs; off by default)",
    )
    return parser.parse_args(argv)


def use_compilation_cache(path: str) -> None:
    """Turn on JAX's persistent compilation cache in `path` for every compiled function,
    however short its compilation (the defaults skip those under one second)."""
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def load_data(workload: str, path: str | None) -> dict[str, np.ndarray]:
    """Digits or MNIST from the driver's .npz (identical arrays for every library), or the
    fixed random data of the "large" workload (generated here from a fixed seed)."""
    if workload == "large":
        rng = np.random.default_rng(LARGE_DATA_SEED)
        x = rng.random((LARGE_SAMPLES, WORKLOADS["large"]["sizes"][0]), dtype=np.float32)
        y = rng.integers(0, 10, size=LARGE_SAMPLES).astype(np.int32)
        return {"x_train": x, "y_train": y, "x_test": x[:0], "y_test": y[:0]}
    if path is None:
        raise ValueError(f"--data PATH.npz is required for the {workload} workload")
    with np.load(path) as data:
        return {k: np.asarray(data[k]) for k in ("x_train", "y_train", "x_test", "y_test")}


def one_hot(y: np.ndarray, n: int = 10) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[y]


def epoch_batches(x: np.ndarray, y: np.ndarray, batch: int, rng: np.random.Generator):
    """Shuffled full batches (the ragged tail is dropped so every call has one shape)."""
    order = rng.permutation(len(x))
    for start in range(0, len(x) - batch + 1, batch):
        idx = order[start : start + batch]
        yield np.ascontiguousarray(x[idx]), one_hot(y[idx])


def block(tree: Any) -> Any:
    import jax

    return jax.block_until_ready(tree)


def predict_all(trainer: Trainer, x: np.ndarray, batch: int) -> np.ndarray:
    """Feedforward predictions in fixed-size chunks (the tail padded), so no library
    recompiles for a new batch size."""
    out = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, x.shape[1]), x.dtype)])
        out.append(np.asarray(trainer.predict(chunk))[:n])
    return np.concatenate(out)


def accuracy(trainer: Trainer, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    return float(np.mean(predict_all(trainer, x, batch).argmax(-1) == y))


def peak_mib() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def versions(distributions: Sequence[str]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", *distributions):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device() -> str:
    import jax

    dev = jax.devices()[0]
    return f"{dev.platform}:{getattr(dev, 'device_kind', '')}"


def run_throughput(trainer: Trainer, spec: Workload, args, data) -> dict[str, Any]:
    """Compile (first call, timed apart), train `--accuracy-epochs` epochs on digits for the
    train accuracy, then `--warmup` untimed and `--steps` timed steps."""
    rng = np.random.default_rng(args.seed)
    x, y = data["x_train"], data["y_train"]
    first = next(epoch_batches(x, y, spec.batch, rng))
    t0 = time.perf_counter()
    block(trainer.step(*first))
    compile_s = time.perf_counter() - t0
    train_acc = None
    if spec.name == "digits" and args.accuracy_epochs > 0:
        # The compile call above was the first step of epoch 1.
        for epoch in range(args.accuracy_epochs):
            for i, (xb, yb) in enumerate(epoch_batches(x, y, spec.batch, rng)):
                if epoch == 0 and i == 0:
                    continue
                trainer.step(xb, yb)
        train_acc = accuracy(trainer, x, y, spec.batch)
    pool = list(epoch_batches(x, y, spec.batch, rng))
    for i in range(args.warmup):
        block(trainer.step(*pool[i % len(pool)]))
    times = []
    for i in range(args.steps):
        xb, yb = pool[i % len(pool)]
        t0 = time.perf_counter()
        block(trainer.step(xb, yb))
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {
        "samples_per_s": spec.batch / median,
        "step_ms_median": 1e3 * median,
        "step_ms_min": 1e3 * min(times),
        "timed_steps": len(times),
        "compile_s": compile_s,
        "train_acc": train_acc,
    }


def run_tta(trainer: Trainer, spec: Workload, args, data) -> dict[str, Any]:
    """Wall time from the start of training (compile included) until the test accuracy,
    evaluated once per epoch, first reaches `--target-acc`. The accuracy and the elapsed
    wall time after every epoch are kept, so any lower target can be read off later."""
    rng = np.random.default_rng(args.seed)
    x, y = data["x_train"], data["y_train"]
    compile_s = None
    curve = []
    elapsed = []
    seconds = None
    eval_s = 0.0
    start = time.perf_counter()
    for _ in range(args.max_epochs):
        for xb, yb in epoch_batches(x, y, spec.batch, rng):
            if compile_s is None:
                t0 = time.perf_counter()
                block(trainer.step(xb, yb))
                compile_s = time.perf_counter() - t0
            else:
                trainer.step(xb, yb)
        t_eval = time.perf_counter()
        acc = accuracy(trainer, data["x_test"], data["y_test"], spec.batch)
        eval_s += time.perf_counter() - t_eval
        curve.append(acc)
        elapsed.append(time.perf_counter() - start)
        if acc >= args.target_acc:
            seconds = time.perf_counter() - start
            break
    return {
        "seconds": seconds,
        "compile_s": compile_s,
        "epochs": len(curve) if seconds is not None else None,
        "epochs_run": len(curve),
        "final_acc": curve[-1] if curve else None,
        "test_acc_curve": curve,
        "elapsed_s_curve": elapsed,
        "eval_s_included": eval_s,
        "target_acc": args.target_acc,
    }


@contextlib.contextmanager
def _stdout_to_stderr():
    """Keep stdout for the one JSON line: libraries that print go to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield os.fdopen(os.dup(saved), "w")
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        sys.stdout = real


def main(
    *,
    library: str,
    make_trainer: Callable[[Workload, int, str], Trainer],
    distributions: Sequence[str] = (),
    argv: Sequence[str] | None = None,
) -> int:
    """Parse the CLI, run the requested mode and print one JSON record on stdout.

    On an exception the record carries `"error"` and the exit code is 1.
    """
    args = parse_args(argv)
    spec = make_workload(args.workload)
    if args.compilation_cache:
        use_compilation_cache(args.compilation_cache)
    record: dict[str, Any] = {
        "library": library,
        "workload": spec.name,
        "mode": args.mode,
        "seed": args.seed,
        "batch": spec.batch,
        "sizes": list(spec.sizes),
        "inference_steps": spec.steps,
        "versions": versions(distributions),
        "compilation_cache": bool(args.compilation_cache),
    }
    code = 0
    with _stdout_to_stderr() as out:
        try:
            data = load_data(spec.name, args.data)
            spec = dataclasses.replace(
                spec, epoch_steps=len(data["x_train"]) // spec.batch, setting=args.setting
            )
            trainer = make_trainer(spec, args.seed, args.mode)
            record["device"] = device()
            record["notes"] = trainer.notes
            record["setting"] = trainer.setting
            if args.mode == "throughput":
                record.update(run_throughput(trainer, spec, args, data))
            else:
                record.update(run_tta(trainer, spec, args, data))
        except Exception as exc:  # the record must say why, whatever failed
            traceback.print_exc()
            record["error"] = f"{type(exc).__name__}: {exc}"
            code = 1
        record["peak_mib"] = peak_mib()
        out.write(json.dumps(record) + "\n")
        out.flush()
        out.close()
    return code
