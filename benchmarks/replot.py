"""Redraw the figures of recorded runs from their `results.json`, without running anything.

    python benchmarks/replot.py benchmarks/results/oneshot_mnist_transfer \
        benchmarks/results/depth_mnist

Each argument is a folder holding a `results.json` written by `pcastro oneshot`,
`pcastro interrupt`, `pcastro continual` (`pcastro.bench.plot_results`) or
`benchmarks/depth.py` (its `depth.png`); the figures are written beside it.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pcastro.bench import plot_results  # noqa: E402


def replot(folder: Path) -> list[Path]:
    path = folder / "results.json"
    payload = json.loads(path.read_text())
    if isinstance(payload, dict) and payload.get("benchmark") == "depth":
        import depth

        depth.plot(payload, folder / "depth.png")
        return [folder / "depth.png"]
    return plot_results(path)


def main(argv) -> int:
    if not argv:
        raise SystemExit(__doc__)
    if argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    for folder in argv:
        for written in replot(Path(folder)):
            print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
