"""Driver-side helpers shared by `compare_libraries.py` and `time_to_accuracy.py`.

Runs in the main environment only: prepares the digits split once, keeps one virtual
environment per third-party library under the cache folder (their pins never touch the main
environment), and runs one adapter process at a time, returning its JSON record.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ADAPTER_DIR = Path(__file__).resolve().parent
REPO_ROOT = ADAPTER_DIR.parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

LIBRARIES = ("pcastro", "pcx", "jpc", "fabricpc", "ngclearn", "backprop", "lean")
MAIN_ENV = frozenset({"pcastro", "backprop", "lean"})
ADAPTERS = {
    "pcastro": "pcastro_lib.py",
    "pcx": "pcx_lib.py",
    "jpc": "jpc_lib.py",
    "fabricpc": "fabricpc_lib.py",
    "ngclearn": "ngclearn_lib.py",
    "backprop": "backprop.py",
    "lean": "lean.py",
}
# What pip installs into each library's own venv (jpc comes from --jpc-source).
PIP_SPECS = {"pcx": ["pcx"], "fabricpc": ["fabricpc"], "ngclearn": ["ngclearn"]}
INSTALLED_MARKER = ".pcastro-bench-installed"


def default_cache() -> Path:
    return Path.home() / ".cache" / "pcastro-bench"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_libraries(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(LIBRARIES))
    if unknown:
        raise SystemExit(f"unknown libraries {unknown}; choose from {', '.join(LIBRARIES)}")
    return names


def prepare_digits(cache: Path) -> Path:
    """sklearn digits / 16, split 80/20 (stratified, random_state=0), saved once so every
    library reads identical arrays."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    path = cache / "data" / "digits.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def prepare_mnist(cache: Path, data_dir: str | Path | None) -> Path:
    """Full MNIST (official 60,000/10,000 split) read by `pcastro.data.load_dataset` from
    `data_dir` (else the folder in `PCASTRO_DATA`), rescaled from [0, 1] to [-1, 1] as in
    the pcx benchmark paper's MLP examples, flattened to 784 and saved once so every
    library reads identical arrays."""
    import numpy as np

    from pcastro.data import load_dataset

    data = load_dataset("mnist", data_dir=data_dir)

    def flat(x):
        x = np.asarray(x, np.float32).reshape(len(x), -1)
        return 2.0 * x - 1.0

    path = cache / "data" / "mnist.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=flat(data.x_train),
        y_train=np.asarray(data.y_train, np.int32),
        x_test=flat(data.x_test),
        y_test=np.asarray(data.y_test, np.int32),
    )
    return path


@dataclasses.dataclass
class Env:
    library: str
    python: str | None
    reason: str | None = None
    install_log: str | None = None
    install_s: float | None = None


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_env(
    library: str, cache: Path, *, jpc_source: str | None = None, reinstall: bool = False
) -> Env:
    """The interpreter that runs `library`'s adapter, creating its venv on first use.

    On any failure the returned `Env` has `python=None` and `reason` says why."""
    adapter = ADAPTER_DIR / ADAPTERS[library]
    if not adapter.exists():
        return Env(library, None, reason=f"adapter missing ({adapter.name})")
    if library in MAIN_ENV:
        return Env(library, sys.executable)
    if library == "jpc":
        if not jpc_source:
            return Env(
                library,
                None,
                reason="jpc is not on PyPI: pass --jpc-source PATH_OR_URL to install it",
            )
        spec = [jpc_source]
    else:
        spec = PIP_SPECS[library]
    venv = cache / "venvs" / library
    marker = venv / INSTALLED_MARKER
    python = _venv_python(venv)
    if not reinstall and marker.exists() and python.exists():
        if json.loads(marker.read_text()).get("spec") == spec:
            return Env(library, str(python))
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    install_log = logs / f"install-{library}.log"
    log(f"[install] {library}: python -m venv + pip install {' '.join(spec)} (log {install_log})")
    t0 = time.perf_counter()
    with install_log.open("w") as out:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(python), "-m", "pip", "install", "--upgrade", "pip"],
            [str(python), "-m", "pip", "install", *spec, "numpy"],
        ]
        for cmd in steps:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_clean_env())
            if proc.returncode != 0:
                what = " ".join(cmd[2:])
                tail = _tail(install_log, 3)
                return Env(
                    library,
                    None,
                    reason=f"install failed: `{what}` exited {proc.returncode}: {tail}",
                    install_log=str(install_log),
                )
    marker.write_text(json.dumps({"spec": spec, "date": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return Env(
        library, str(python), install_log=str(install_log), install_s=time.perf_counter() - t0
    )


def _tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])


def _clean_env(main_env: bool = False) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PYTHONNOUSERSITE"] = "1"
    if main_env:
        env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def run_adapter(
    env: Env,
    args: Sequence[str],
    *,
    cache: Path,
    timeout: float,
    tag: str,
) -> dict[str, Any]:
    """Run one adapter process and return its JSON record (with `error` on failure)."""
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    work = cache / "work"
    work.mkdir(parents=True, exist_ok=True)
    cmd = [env.python, str(ADAPTER_DIR / ADAPTERS[env.library]), *args]
    err_log = logs / f"{tag}.log"
    load_1m = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=work,  # libraries that write files (ngc-learn) write them here
            env=_clean_env(main_env=env.library in MAIN_ENV),
        )
    except subprocess.TimeoutExpired as exc:
        err_log.write_text(exc.stderr.decode(errors="replace") if exc.stderr else "")
        return {"library": env.library, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    err_log.write_text(proc.stderr)
    record = None
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            break
    if record is None:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        record = {"library": env.library, "error": f"exit {proc.returncode}, no record: {tail}"}
    record["process_wall_s"] = wall
    record["load_avg_1m_at_start"] = load_1m
    record["log"] = f"<cache>/logs/{err_log.name}"
    return record


def median(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def interleaved(libraries: Sequence[str], rounds: int) -> list[tuple[int, list[str]]]:
    """Round-robin order, rotated every round so no library always runs first."""
    order = list(libraries)
    out = []
    for r in range(rounds):
        k = r % len(order) if order else 0
        out.append((r, order[k:] + order[:k]))
    return out


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def machine() -> dict[str, Any]:
    import platform

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor(),
    }


def fmt(value: float | None, spec: str) -> str:
    """Format a number, or a dash of the same width for a missing one."""
    if value is None:
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return format("-", f">{width}") if width else "-"
    return format(value, spec)


Printer = Callable[[str], None]
