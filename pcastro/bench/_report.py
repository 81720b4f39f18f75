"""Printing, saving and plotting benchmark records."""

import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def environment(seed: int) -> dict:
    """The versions, device kind, command and seed recorded with every result."""
    import equinox
    import jax
    import jaxlib
    import numpy
    import optax
    import sklearn

    import pcastro

    dev = jax.devices()[0]
    program = Path(sys.argv[0])
    # `pcastro ...` and `python -m pcastro.cli ...` are the same command.
    is_cli = program.name == "pcastro" or program.parts[-2:] == ("pcastro", "cli.py")
    return {
        "command": " ".join(["pcastro" if is_cli else program.name, *_masked(sys.argv[1:])]),
        "versions": {
            "pcastro": pcastro.__version__,
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,  # pyright: ignore[reportPrivateImportUsage]
            "equinox": equinox.__version__,
            "optax": optax.__version__,
            "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', dev.platform)}",
        "seed": seed,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def payload(config: dict, seed: int, results: list[dict], details: dict, *, devices: int) -> dict:
    """The `results.json` record: config, versions, device kind, how many `devices` the
    independent episodes or seeds were split over, seed, command, date, results."""
    env = environment(seed)
    return {
        "config": config,
        "versions": env["versions"],
        "device": env["device"],
        "devices": devices,
        "seed": seed,
        "command": env["command"],
        "date": env["date"],
        "results": results,
        "details": details,
    }


def _masked(args: list[str]) -> list[str]:
    """The command's arguments with the data folder (a path of this machine) as `DIR`, so
    that a record says how to rerun it anywhere."""
    out = []
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] == "--data-dir":
            arg = "DIR"
        elif arg.startswith("--data-dir="):
            arg = "--data-dir=DIR"
        out.append(arg)
    return out


def resolved_config(cfg, results: list[dict], *, features: int | None) -> dict:
    """`cfg` as a dict with the defaults that depend on the data filled in: the hidden
    units actually used and the methods actually run (in `results`), so that a
    `results.json` says what ran, not `hidden: null, methods: []`."""
    from dataclasses import asdict

    from ._config import hidden_units

    config = asdict(cfg)
    if features is not None and "hidden" in config and not isinstance(cfg.hidden, tuple):
        config["hidden"] = hidden_units(cfg, features)
    config["methods"] = list(dict.fromkeys(r["method"] for r in results))
    if config.get("data_dir") is not None:  # where the data lay on this machine
        config["data_dir"] = "DIR"
    if hasattr(cfg, "protocol"):  # a one-shot run: which protocol's config it was
        config["protocol"] = cfg.protocol
    return config


def original_labels(episode):
    """`(support_x, support_y, query_x, query_y)` of (batched) episodes with the original
    class ids instead of the episode's `0..ways-1` labels."""
    import jax.numpy as jnp

    sy = jnp.take_along_axis(episode.classes, episode.support_y, axis=-1)
    qy = jnp.take_along_axis(episode.classes, episode.query_y, axis=-1)
    return episode.support_x, sy, episode.query_x, qy


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table of `rows` (dicts) with the given columns; floats to 3 decimals."""

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.3f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def format_selection(selection: dict) -> str:
    """A selection on validation as printed: `name=value` pairs, floats to 3 significant
    digits, a value at the edge of its grid (`at_edge`) marked `(edge of grid)`, and
    lists (the candidates, kept in full in `results.json`) summarised by their length.

    `{'lr': 0.01, 'updates': 6, 'val_acc': 0.68666, 'at_edge': ['lr']}` prints as
    `lr=0.01 (edge of grid), updates=6, val_acc=0.687`.
    """
    edges = set(selection.get("at_edge", ()))
    parts = []
    for name, value in selection.items():
        if name == "at_edge":
            continue
        if isinstance(value, (list, tuple)):
            parts.append(f"{name}: {len(value)}")
            continue
        text = f"{value:.3g}" if isinstance(value, (float, np.floating)) else str(value)
        parts.append(f"{name}={text}" + " (edge of grid)" * (name in edges))
    return ", ".join(parts)


def _strict(value):
    """NaN and infinities become null: results files are strict JSON any reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def save_json(out_dir: Path, payload: dict) -> Path:
    """Write `results.json` atomically (a temporary file moved into place), strict JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_strict(payload), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def check_output_dir(out_dir: Path, *, overwrite: bool = False) -> None:
    """Fail before any work when results could not be written to `out_dir`, or would
    replace an earlier run's `results.json` without `overwrite`."""
    earlier = out_dir / "results.json"
    if earlier.is_file() and not overwrite:
        try:
            recorded = json.loads(earlier.read_text())
            when = f"run on {recorded.get('date', 'an unknown date')}"
            command = recorded.get("command")
            when += f" by `{command}`" if command else ""
        except (OSError, ValueError):
            when = "unreadable"
        raise ValueError(
            f"`--out {out_dir}` already holds the results of an earlier run ({when}); "
            "choose another `--out`, or pass `--overwrite` to replace them."
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(
            f"`--out {out_dir}` is an existing file, not a folder; choose a folder (it is "
            "created if missing)."
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(
            f"`--out {out_dir}` cannot be written ({err.strerror}); choose a writable folder."
        ) from None


def _save_figure(fig, path: Path) -> Path:
    """Save atomically, like the JSON: a failed save leaves any earlier figure intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    tmp.replace(path)
    return path
