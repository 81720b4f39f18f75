"""Reproduce the README's interrupted-learning figure and table.

    python benchmarks/interrupt.py --dataset mnist5k --episodes 20 \
        --out benchmarks/results/interrupt_mnist5k

A thin wrapper over `pcastro interrupt` (see `pcastro interrupt --help` for every option);
it writes `results.json` and `results.png` into `--out`.
"""

import sys

from pcastro.cli import main

if __name__ == "__main__":
    sys.exit(main(["interrupt", *sys.argv[1:]]))
