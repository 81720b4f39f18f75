"""Cold and warm wall time of the main job: `pcastro oneshot` with an empty persistent
compilation cache (cold: every program compiled and stored), again with the cache it
filled (warm: nothing compiled twice), and with the cache off (cold, the benchmarks'
default). Each run is a fresh process, timed from launch to exit.

    python benchmarks/warm_start.py --repeats 2 --json benchmarks/results/warm_start_cpu.json

Run it alone on the machine: the seconds are wall times.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import environment, write_json  # noqa: E402


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pcastro.cli", *args], check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rows = {"no_cache": [], "cold_cache": [], "warm_cache": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            cache = str(Path(tmp) / f"cache{r}")
            runs = {
                "no_cache": ["--no-compilation-cache"],
                "cold_cache": ["--compilation-cache", cache],
                "warm_cache": ["--compilation-cache", cache],
            }
            for name, extra in runs.items():
                out = ["--out", str(Path(tmp) / f"{name}{r}")]
                base = ["oneshot", "--no-progress", "--episodes", str(args.episodes)]
                rows[name].append(_run(base + out + extra))
            shutil.rmtree(cache)
            print({k: round(v[-1], 1) for k, v in rows.items()})
    summary = {k: {"median_s": sorted(v)[len(v) // 2], "all_s": v} for k, v in rows.items()}
    record = {**environment(), "config": vars(args), "runs": summary}
    if args.json:
        write_json(args.json, record)
    return record


if __name__ == "__main__":
    main()
