"""Shared helpers for the benchmark scripts: timing, environment record, JSON output."""

import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path


def block(tree):
    import jax

    return jax.block_until_ready(tree)


def time_calls(fn, args, *, repeats: int, inner: int = 1):
    """Compile time of the first call, then the median wall time of `repeats` timed calls.

    `fn(*args)` must return the next `args` (a training step threads its own state).
    Returns `(compile_s, median_s, all_s, args)`.
    """
    t0 = time.perf_counter()
    args = block(fn(*args))
    compile_s = time.perf_counter() - t0
    args = block(fn(*args))  # one warm-up call after compilation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            args = fn(*args)
        block(args)
        times.append((time.perf_counter() - t0) / inner)
    return compile_s, (statistics.median(times) if times else float("nan")), times, args


def peak_memory_mib() -> float:
    """Peak memory: the accelerator's peak bytes in use where JAX reports it, else the
    process's peak resident set size."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def environment() -> dict:
    """Versions, device and command of this run."""
    import equinox
    import jax
    import jaxlib
    import optax

    import pcastro

    dev = jax.devices()[0]
    return {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', dev.platform)}",
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax_version": jax.__version__,
        "versions": {
            "pcastro": pcastro.__version__,
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "equinox": equinox.__version__,
            "optax": optax.__version__,
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def write_json(path, payload) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
