"""Where do astrocytes need to sit? Accuracy against the coverage of astrocyte regions.

    python benchmarks/coverage.py mnist5k
    PCASTRO_DATA=/path/to/data python benchmarks/coverage.py mnist
    python benchmarks/coverage.py mnist5k --sense target
    python benchmarks/coverage.py --report benchmarks/results/coverage_mnist5k_transfer

One-shot transfer (pretrain on digits 0-4, learn each of 5-9 from one example) with the
PC-native learner `pc_sgd` (plain local updates, SGD) under astrocytes on a subset of its
column regions (one per block of hidden units, one per output unit): none (`pc_sgd`),
hidden blocks only, output columns only, random subsets of 25/50/75% of the regions,
and all (`pc_sgd_astro_columns`; with `--sense target` the astrocytes sense the
target-directed excess instead and all is `pc_astro_target`). Uncovered regions learn
with gate 1, as ablated astrocytes do. Every placement has its learning rate and update
count selected on validation episodes; all are scored on the same test episodes, so each
placement minus no coverage and minus full coverage is a paired difference.

Writes `results.json` (every placement's per-episode values and mask), `coverage.md`
(the table and paired differences) and `coverage.png` (accuracy against the fraction of
regions covered, and novel accuracy against base retention) into
`benchmarks/results/coverage_DATASET_transfer/`.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
NONE = "pc_sgd"
SWEEP = "pc_sgd_astro_coverage"  # the sweep's name (once a method of `pcastro oneshot`)
SENSES = {
    "squared": ("pc_sgd_astro_columns", "pc_sgd_cover_"),
    "target": ("pc_astro_target", "pc_target_cover_"),
}
"""What the astrocytes sense -> (the fully covered registered method, the prefix of the
placements' names): the squared error, or the target-directed excess
(`pcastro.astro.TargetExcess`)."""
FRACTIONS, DRAWS = (0.25, 0.5, 0.75), 2
METRICS = ("ten_way_accuracy", "novel_accuracy", "base_retention")


def coverage_masks(
    *, blocks: int, classes: int, fractions: tuple[float, ...], draws: int, seed: int
) -> dict[str, tuple[bool, ...]]:
    """Which column regions have an astrocyte, by placement.

    The regions are those of `pc_sgd_astro_columns`: `blocks` blocks of hidden units,
    then one per output unit (`classes`). Placements: `hidden` (the hidden blocks only),
    `output` (the output columns only) and, for each fraction `f`, `draws` random
    subsets of `round(f * R)` regions (`random{100 f}-{draw}`), drawn with `seed`. No
    coverage is `pc_sgd`; full coverage is `pc_sgd_astro_columns`.
    """
    if not all(0.0 < f < 1.0 for f in fractions):
        raise ValueError(
            f"Coverage fractions must lie strictly between 0 and 1 (no coverage is pc_sgd, "
            f"full coverage pc_sgd_astro_columns); got {fractions}."
        )
    total = blocks + classes
    masks = {
        "hidden": (True,) * blocks + (False,) * classes,
        "output": (False,) * blocks + (True,) * classes,
    }
    rng = np.random.default_rng(seed)
    for f in fractions:
        for d in range(draws):
            chosen = set(rng.choice(total, size=round(f * total), replace=False).tolist())
            masks[f"random{round(100 * f)}-{d}"] = tuple(r in chosen for r in range(total))
    return masks


def coverage_learners(
    parts, *, fractions: tuple[float, ...], draws: int, sense: str = "squared"
) -> dict[str, list]:
    """`pc_sgd_astro_columns` (`sense="squared"`) or `pc_astro_target` (`"target"`) with
    astrocytes on a subset of its regions only, one learner per placement of
    `coverage_masks` (drawn with the run's seed), named `pc_sgd_cover_{placement}` or
    `pc_target_cover_{placement}`; uncovered regions learn with gate 1 (see
    `pcastro.astro.Astrocytes(covered=...)`). `parts`: the run's
    `pcastro.bench.LearnerParts`."""
    from pcastro.astro import TargetExcess
    from pcastro.bench import PCLocal
    from pcastro.bench._learners import default_astrocytes
    from pcastro.bench._readouts import check_blocks

    cfg = parts.config
    blocks = cfg.hidden_columns
    check_blocks(parts.hidden, blocks)
    masks = coverage_masks(
        blocks=blocks, classes=parts.classes, fractions=fractions, draws=draws, seed=cfg.seed
    )
    prefix = SENSES[sense][1]
    extra = {"sense": TargetExcess()} if sense == "target" else {}
    learners = [
        PCLocal(
            label=f"{prefix}{place}",
            rule=parts.rule,
            lrs=cfg.sgd_lrs,
            updates=parts.updates,
            astrocytes=default_astrocytes(covered=np.asarray(mask), **extra),
            columns=(blocks, parts.classes),
        )
        for place, mask in masks.items()
    ]
    return {SWEEP: learners}


def run(
    dataset: str, *, episodes: int, seed: int, name: str | None, grid: dict,
    fractions: tuple[float, ...] = FRACTIONS, draws: int = DRAWS, sense: str = "squared",
) -> Path:  # fmt: skip
    from pcastro.bench import TransferConfig, run_oneshot
    from pcastro.bench._report import check_output_dir, save_json

    suffix = "" if sense == "squared" else f"_{sense}"
    out = RESULTS / (name or f"coverage_{dataset}_transfer{suffix}")
    check_output_dir(out)
    cfg = TransferConfig(
        dataset=dataset,
        episodes=episodes,
        seed=seed,
        frontier_episodes=0,
        methods=(NONE, SENSES[sense][0]),
        **grid,
    )
    payload = run_oneshot(
        cfg,
        extra=lambda parts: coverage_learners(parts, fractions=fractions, draws=draws, sense=sense),
    )
    payload["coverage_sweep"] = {"fractions": list(fractions), "draws": draws, "sense": sense}
    save_json(out, payload)
    return out


def sense_of(payload) -> tuple[str, str]:
    """The fully covered method and the placements' prefix of a recorded sweep (sweeps
    recorded before `--sense` sensed the squared error)."""
    return SENSES[payload.get("coverage_sweep", {}).get("sense", "squared")]


def placements(payload) -> list[dict]:
    """One row per placement: name, covered hidden blocks and output columns, fraction."""
    full, prefix = sense_of(payload)
    cfg = payload["config"]
    blocks, classes = cfg["hidden_columns"], 10
    masks = {NONE: [False] * (blocks + classes), **payload["details"]["coverage"]}
    rows = []
    for name, mask in masks.items():
        mask = np.asarray(mask, bool)
        rows.append(
            {
                "method": name,
                "placement": name.removeprefix(prefix)
                if name.startswith(prefix)
                else ("none" if name == NONE else "all"),
                "hidden": int(mask[:blocks].sum()),
                "output": int(mask[blocks:].sum()),
                "fraction": float(mask.mean()),
            }
        )
    return rows


def report(folder: Path) -> str:
    from pcastro.bench._compare import paired_against

    payload = json.loads((folder / "results.json").read_text())
    results = payload["results"]
    full = sense_of(payload)[0]
    cell = {(r["method"], r["metric"]): r for r in results}
    rows = placements(payload)
    names = [r["method"] for r in rows]
    vs_none = {(p["method"], p["metric"]): p for p in paired_against(results, NONE, names[1:])}
    vs_all = {
        (p["method"], p["metric"]): p
        for p in paired_against(results, full, [n for n in names if n != full])
    }
    sel = payload["details"]["selected"]
    n = cell[(NONE, METRICS[0])]["n"]
    cfg = payload["config"]
    lines = [
        f"`{payload['command']}` ({payload['device']}, seed {payload['seed']}, "
        f"{payload['details']['wall_s']:.0f} s, {n} test episodes, "
        f"{cfg['hidden_columns']} hidden blocks + 10 output columns = "
        f"{cfg['hidden_columns'] + 10} regions)",
        "",
        "| placement | hidden / output covered | fraction | ten-way | novel | base "
        "| ten-way − none | ten-way − all | novel − none | base − none | lr, updates |",
        "|---" * 11 + "|",
    ]

    def diff(table, key):
        p = table.get(key)
        if p is None:
            return ""
        star = "*" if abs(p["diff"]) > p["ci95"] else ""
        return f"{p['diff']:+.3f} ± {p['ci95']:.3f}{star}"

    for r in sorted(rows, key=lambda r: (r["fraction"], r["placement"])):
        m = r["method"]
        acc = [f"{cell[(m, k)]['mean']:.3f}" for k in METRICS]
        lines.append(
            f"| {r['placement']} | {r['hidden']} / {r['output']} | {r['fraction']:.2f} | "
            + " | ".join(acc)
            + f" | {diff(vs_none, (m, METRICS[0]))} | {diff(vs_all, (m, METRICS[0]))} "
            f"| {diff(vs_none, (m, METRICS[1]))} | {diff(vs_none, (m, METRICS[2]))} "
            f"| {sel[m]['lr']}, {sel[m]['updates']} |"
        )
    lines += [
        "",
        "Differences are paired over the same test episodes (mean ± 95% CI; * where the "
        "interval excludes 0). Each placement's learning rate and updates per example were "
        "selected on validation episodes.",
    ]
    return "\n".join(lines)


def figure(folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    payload = json.loads((folder / "results.json").read_text())
    cell = {(r["method"], r["metric"]): r for r in payload["results"]}
    rows = placements(payload)
    style = {"none": "D", "all": "D", "hidden": "^", "output": "s"}
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    for r in rows:
        marker = style.get(r["placement"], "o")
        c = cell[(r["method"], "ten_way_accuracy")]
        for ax, x in ((left, r["fraction"]), (middle, r["output"])):
            ax.errorbar(x, c["mean"], yerr=c["ci95"], fmt=marker, capsize=3)
            ax.annotate(
                r["placement"],
                (x, c["mean"]),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
        nov, base = cell[(r["method"], "novel_accuracy")], cell[(r["method"], "base_retention")]
        right.errorbar(
            base["mean"], nov["mean"], xerr=base["ci95"], yerr=nov["ci95"], fmt=marker, capsize=2
        )
        right.annotate(
            r["placement"],
            (base["mean"], nov["mean"]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    left.set_xlabel("fraction of regions with an astrocyte")
    left.set_ylabel("ten-way accuracy (mean, 95% CI)")
    middle.set_xlabel("output columns with an astrocyte (of 10)")
    right.set_xlabel("base retention")
    right.set_ylabel("novel accuracy")
    cfg = payload["config"]
    target = sense_of(payload)[0] == "pc_astro_target"
    fig.suptitle(
        f"one-shot transfer, {cfg['dataset']}: pc_sgd with astrocytes sensing "
        f"{'the target-directed excess' if target else 'the squared error'}"
        f" on part of its column regions ({cfg['episodes']} test episodes)"
    )
    fig.tight_layout()
    path = folder / "coverage.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="mnist5k")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sgd-lrs", default=None, help="learning-rate grid, e.g. 0.003,0.01")
    parser.add_argument("--updates", default=None, help="updates-per-example grid, e.g. 10,30")
    parser.add_argument("--name", default=None, help="results folder name")
    parser.add_argument(
        "--fractions", default=",".join(map(str, FRACTIONS)),
        help="fractions of the column regions given an astrocyte at random",
    )  # fmt: skip
    parser.add_argument("--draws", type=int, default=DRAWS, help="random subsets per fraction")
    parser.add_argument(
        "--sense", choices=tuple(SENSES), default="squared",
        help="what the astrocytes sense: the squared error (pc_sgd_astro_columns) or the "
        "target-directed excess (pc_astro_target)",
    )  # fmt: skip
    parser.add_argument("--report", type=Path, default=None, help="only redo the report")
    args = parser.parse_args(argv)
    grid = {}
    if args.sgd_lrs:
        grid["sgd_lrs"] = tuple(float(v) for v in args.sgd_lrs.split(","))
    if args.updates:
        grid["updates_per_example"] = tuple(int(v) for v in args.updates.split(","))
    folder = args.report or run(
        args.dataset, episodes=args.episodes, seed=args.seed, name=args.name, grid=grid,
        fractions=tuple(float(v) for v in args.fractions.split(",")), draws=args.draws,
        sense=args.sense,
    )  # fmt: skip
    text = report(folder)
    (folder / "coverage.md").write_text(text + "\n")
    print(text)
    print(f"wrote {folder / 'coverage.md'} and {figure(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
