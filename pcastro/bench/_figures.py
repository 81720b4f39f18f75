"""The figures of the benchmarks, drawn from a `results.json` payload alone.

Every figure takes the colour of a method from [`method_colour`][], one map for every
benchmark, so a method looks the same in every figure. A recorded run is re-plotted,
without running anything again, by [`plot_results`][].
"""

import json
import re
import textwrap
import zlib
from pathlib import Path

import numpy as np

from ._compare import is_pc_method, paired_differences
from ._methods import current_names
from ._report import _save_figure

# One colour per method name. PC methods are cool colours (blues, purples, cyans),
# backprop warm (oranges, reds), pixel and class-mean baselines grey; a variant of a
# method is a lighter shade of its colour.
METHOD_COLOURS = {
    # One-shot: PC methods that learn the episode.
    "pc": "#1f77b4",
    "pc_astro": "#9467bd",
    "pc_sgd": "#17becf",
    "pc_sgd_astro_layers": "#393b79",
    "pc_sgd_astro_columns": "#6b6ecf",
    "pc_sgd_fresh": "#9edae5",
    "pc_sgd_astro_columns_fresh": "#9c9ede",
    "pc_sgd_head": "#5254a3",
    "pc_sgd_novel": "#7b4173",
    "pc_sgd_novel_fresh": "#ce6dbd",
    "pc_sgd_target_fresh": "#a55194",
    "pc_astro_target": "#00a087",
    "pc_astro_target_fresh": "#91d1c2",
    # One-shot: backprop and the non-parametric baselines.
    "backprop": "#ff7f0e",
    "backprop_replay": "#d62728",
    "pixel_nn": "#7f7f7f",
    "class_mean": "#a5a5a5",
    # Interruption.
    "backprop_sequential": "#fdae6b",
    "backprop_interrupted": "#e6550d",
    "backprop_joint": "#843c39",
    "backprop_rehearse": "#fc9272",
    "pc_no_store": "#6baed6",
    "pc_replay": "#08519c",
    "pc_store_stored": "#31a354",
    "pc_store_fresh": "#a1d99b",
    "pc_store_ne": "#756bb1",
    "pc_store_no_ne": "#bcbddc",
    "pc_astro_ablated": "#ad494a",
    # Continual learning.
    "backprop_finetune": "#e6ab02",
    "backprop_er": "#f46d43",
    "backprop_per": "#a50026",
    "pc_finetune": "#80b1d3",
    "pc_joint": "#253494",
    "pc_er": "#1b9e77",
    "pc_store_uniform": "#7570b3",
    "pc_store_uniform_lean": "#9e9ac8",
    "pc_store_priority": "#66a61e",
    "pc_store_priority_refresh": "#b8e186",
    "pc_store_priority_lean": "#238b45",
    "pc_store_resume": "#54278f",
    "pc_store_gate": "#bc80bd",
    "pc_store_gate_example": "#e7298a",
    "pc_store_gate_example_lean": "#f1b6da",
    "pc_store_both": "#4d004b",
    "pc_store_both_refresh": "#c51b7d",
    "pc_store_ablated": "#666666",
}

# A read-out is coloured by the read-out, whatever network it reads: the first shade on
# a PC-pretrained network (`NAME@pc`) or a fresh one (scratch, `NAME`), the lighter
# second shade on a backprop-pretrained network (`NAME@bp`).
READOUT_COLOURS = {
    "proto_cos": ("#2ca02c", "#98df8a"),
    "proto_euc": ("#637939", "#b5cf6b"),
    "imprint": ("#e377c2", "#f7b6d2"),
    "head_ft": ("#8c564b", "#c49c94"),
    "head_ft_replay": ("#bd9e39", "#e7cb94"),
}

# Names not in the maps above (a coverage placement, a new method) get one of these, the
# same one every time; two such names may share a colour.
_OTHER = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
          "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip

# Phases of the interruption benchmark: how much of the method's colour each bar keeps
# (1 = the colour itself, 0 = white), its hatch and its legend entry.
_PHASES = {
    "A_k": (0.3, "", "after A_k (A interrupted)"),
    "B": (0.6, "///", "after B (the interruption)"),
    "final": (1.0, "", "after final (resume or consolidation)"),
}


def method_colour(name: str) -> str:
    """The colour of method `name` in every benchmark figure (a hex string).

    Read-outs `NAME@pc` and `NAME@bp` take the colour of the read-out `NAME` (a lighter
    shade on the backprop-pretrained network), not the colour of a PC method.
    """
    if name in METHOD_COLOURS:
        return METHOD_COLOURS[name]
    readout, _, body = name.partition("@")
    if readout in READOUT_COLOURS:
        return READOUT_COLOURS[readout][body == "bp"]
    return _OTHER[zlib.crc32(name.encode()) % len(_OTHER)]


def _tint(colour: str, keep: float) -> tuple:
    """`colour` mixed with white, keeping the fraction `keep` of it."""
    from matplotlib.colors import to_rgb

    return tuple(1.0 - keep * (1.0 - c) for c in to_rgb(colour))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _wrap(title: str, fig) -> str:
    """Wrapped to the figure's width, so that a long title is never cut off."""
    return textwrap.fill(title, width=int(14 * fig.get_figwidth()))


def _fitted(lo: float, hi: float, *, include=(), min_span: float = 0.02) -> tuple:
    """An axis range around `[lo, hi]` (and the values in `include`) with a margin."""
    lo, hi = min((lo, *include)), max((hi, *include))
    span = max(hi - lo, min_span)
    centre = (lo + hi) / 2
    lo, hi = min(lo, centre - span / 2), max(hi, centre + span / 2)
    return lo - 0.06 * span, hi + 0.06 * span


def _dot(ax, y, x, err, colour, *, filled=True) -> None:
    ax.errorbar(
        [x], [y], xerr=[err], fmt="o", ms=5, color=colour, mec="0.2", mew=0.6,
        mfc=colour if filled else "white", ecolor=colour, elinewidth=1.4, capsize=2.5,
    )  # fmt: skip


def _ways(metric: str, config: dict) -> int:
    """The classes a query is scored among: `N` in a metric named `..._Nway`, else the
    episode's ways (10 in transfer: base and novel digits share one output)."""
    found = re.search(r"(\d+)way", metric)
    return int(found.group(1)) if found else int(config.get("ways", 10))


def _seed(payload: dict):
    return payload.get("seed", payload.get("config", {}).get("seed"))


# ---- one-shot ------------------------------------------------------------------------------


def oneshot_title(payload: dict) -> str:
    """What a one-shot run did, from its own configuration."""
    cfg, seed = payload["config"], _seed(payload)
    if cfg["dataset"] == "omniglot":
        return (
            f"one-shot Omniglot ({cfg.get('background', 'small1')} background, "
            f"{cfg.get('body', 'mlp')} body), seed {seed}: Lake's 20 official 20-way runs and "
            f"{cfg['episodes']} random 5- and 20-way 1-shot episodes"
        )
    if cfg["protocol"] == "transfer":
        return (
            f"transfer one-shot on {cfg['dataset']}, seed {seed}: pretrained on digits 0-4, "
            f"each of 5-9 learned from {cfg['shots']} example{'s' * (cfg['shots'] > 1)}, "
            f"10-way test, {cfg['episodes']} test episodes"
        )
    return (
        f"scratch one-shot on {cfg['dataset']}, seed {seed}: {cfg['ways']}-way "
        f"{cfg['shots']}-shot, {cfg['episodes']} test episodes"
    )


def oneshot_figure(payload: dict):
    """Accuracy of every method per metric (mean and 95% CI over episodes, an axis
    fitted to the data, chance marked) above the paired differences of every PC method
    minus the best baseline (`details.paired`, 95% CI, zero marked).

    **Returns:**

    The matplotlib figure: one column per metric, the accuracy panels in the first row
    and the paired differences (when there are any) in the second.
    """
    plt = _pyplot()
    config, results = payload["config"], payload["results"]
    paired = payload.get("details", {}).get("paired")
    if paired is None:
        paired = paired_differences(results)
    metrics = list(dict.fromkeys(r["metric"] for r in results))
    methods = list(dict.fromkeys(r["method"] for r in results))
    compared = list(dict.fromkeys(p["method"] for p in paired))
    heights = [len(methods)] + ([len(compared)] if compared else [])
    fig = plt.figure(
        figsize=(2.0 + 3.4 * len(metrics), 2.0 + 0.24 * sum(heights) + 1.0 * len(heights)),
        layout="constrained",
    )
    grid = fig.add_gridspec(len(heights), len(metrics), height_ratios=[h + 2 for h in heights])
    row = {(r["method"], r["metric"]): r for r in results if r["mean"] is not None}
    first = None
    for j, metric in enumerate(metrics):
        ax = fig.add_subplot(grid[0, j], sharey=first)
        shown = [(i, row[(m, metric)]) for i, m in enumerate(methods) if (m, metric) in row]
        for i, r in shown:
            _dot(ax, i, r["mean"], r["ci95"], method_colour(r["method"]))
        ways = _ways(metric, config)
        chance = 1.0 / ways
        lo, hi = _fitted(
            min((r["mean"] - r["ci95"] for _, r in shown), default=chance),
            max((r["mean"] + r["ci95"] for _, r in shown), default=chance),
        )
        if lo <= chance <= hi:
            ax.axvline(chance, color="0.35", ls="--", lw=1)
            note = f"dashed: chance (1/{ways})"
        else:
            side = "left" if chance < lo else "right"
            note = f"chance 1/{ways} = {chance:.2g} lies {side} of the axis"
        ax.set_xlim(lo, hi)
        ax.set_xlabel(f"accuracy (mean, 95% CI)\n{note}", fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
        if first is None:
            first = ax
            ax.set_yticks(range(len(methods)), methods)
            ax.set_ylim(len(methods) - 0.5, -0.5)
            ax.set_ylabel("bold: PC methods", fontsize=8)
            for label in ax.get_yticklabels():
                if is_pc_method(label.get_text()):
                    label.set_fontweight("bold")
        else:
            ax.tick_params(labelleft=False)
    if compared:
        _differences(fig, grid, paired, metrics, compared)
    fig.suptitle(_wrap(oneshot_title(payload), fig), fontsize=10)
    return fig


def _differences(fig, grid, paired, metrics, compared) -> None:
    """The second row of the one-shot figure: paired differences per metric."""
    by = {(p["method"], p["metric"]): p for p in paired}
    first = None
    for j, metric in enumerate(metrics):
        ax = fig.add_subplot(grid[1, j], sharey=first)
        shown = [(i, by[(m, metric)]) for i, m in enumerate(compared) if (m, metric) in by]
        for i, p in shown:
            # Filled: the interval excludes 0; open: it does not.
            filled = abs(p["diff"]) > p["ci95"]
            _dot(ax, i, p["diff"], p["ci95"], method_colour(p["method"]), filled=filled)
        ax.axvline(0.0, color="k", lw=0.9)
        if shown:
            ax.set_xlim(
                *_fitted(
                    min(p["diff"] - p["ci95"] for _, p in shown),
                    max(p["diff"] + p["ci95"] for _, p in shown),
                    include=(0.0,),
                    min_span=0.01,
                )
            )
            vs = shown[0][1]["vs"]
            ax.set_title(f"{metric}\nPC method − {vs} (the best baseline)", fontsize=9)
        ax.set_xlabel(
            "paired difference, same episodes (mean, 95% CI)\nopen: the CI includes 0",
            fontsize=8,
        )
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
        if first is None:
            first = ax
            ax.set_yticks(range(len(compared)), compared)
            ax.set_ylim(len(compared) - 0.5, -0.5)
            for label in ax.get_yticklabels():
                label.set_fontweight("bold")
        else:
            ax.tick_params(labelleft=False)


def frontier_title(payload: dict) -> str:
    cfg, seed = payload["config"], _seed(payload)
    counts = sorted({f["episodes"] for f in payload["details"]["frontier"].values()})
    episodes = "/".join(map(str, counts))
    return (
        f"transfer one-shot on {cfg['dataset']}, seed {seed}: every grid point on the first "
        f"{episodes} test episodes (mean); line: the frontier of each method; star: the "
        "point chosen on validation"
    )


def frontier_figure(payload: dict):
    """Novel accuracy against base retention at every grid point of every method (test
    episodes), the upper-right frontier of each method drawn, its validation choice starred.

    `details.frontier[name]` holds `novel` and `base` (mean over test episodes, one entry
    per grid point) and `selected` (the index of the validation choice in those lists).
    """
    plt = _pyplot()
    frontiers = payload["details"]["frontier"]
    panels = {
        "PC methods": {k: v for k, v in frontiers.items() if is_pc_method(k)},
        "baselines: backprop, and read-outs on the PC (@pc) or backprop (@bp) network": {
            k: v for k, v in frontiers.items() if not is_pc_method(k)
        },
    }
    panels = {k: v for k, v in panels.items() if v}
    fig, axes = plt.subplots(
        1, len(panels), figsize=(6.5 * len(panels), 6.4), squeeze=False, layout="constrained"
    )
    for ax, (panel, group) in zip(axes[0], panels.items()):
        for name, f in group.items():
            novel, base = np.asarray(f["novel"]), np.asarray(f["base"])
            colour = method_colour(name)
            ax.scatter(base, novel, s=8, color=colour, alpha=0.35)
            # Pareto frontier: the points that no other point beats on both axes.
            front, best = [], -np.inf
            for j in np.argsort(-base, kind="stable"):
                if novel[j] > best:
                    front.append(j)
                    best = novel[j]
            ax.plot(base[front], novel[front], color=colour, lw=1.4, label=name)
            s = f["selected"]
            ax.scatter(
                [base[s]], [novel[s]], marker="*", s=140, color=colour, edgecolor="k", zorder=5
            )
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("base retention (test)")
        ax.set_ylabel("novel accuracy (test)")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        # Below the axes, so that it never covers a frontier.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    fig.suptitle(_wrap(frontier_title(payload), fig), fontsize=9)
    return fig


# ---- interruption ----------------------------------------------------------------------------


def interrupt_title(payload: dict) -> str:
    cfg = payload["config"]
    return (
        f"interrupted learning on {cfg['dataset']}, seed {_seed(payload)}: A = digits 0-4, "
        f"B = digits 5-9, {cfg['shots']}-shot, A interrupted after "
        f"{cfg.get('interrupt_fraction', 0.5):.0%} of its updates, {cfg['episodes']} test "
        "episodes (mean, 95% CI)"
    )


def interrupt_figure(payload: dict):
    """Accuracy on A and B after each phase, one group of bars per method in the
    method's colour, the phases told apart by shade and hatch; the legend sits outside
    the bars."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    results = payload["results"]
    methods = list(dict.fromkeys(r["method"] for r in results))
    phases = list(dict.fromkeys(r["phase"] for r in results))
    lookup = {(r["method"], r["phase"], r["task"]): r for r in results}
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.0), sharey=True, layout="constrained")
    width = 0.8 / len(phases)
    top = max((r["mean"] or 0.0) + (r["ci95"] or 0.0) for r in results)
    for ax, task, digits in zip(axes, ("A", "B"), ("0-4", "5-9")):
        for j, phase in enumerate(phases):
            keep, hatch, _ = _PHASES.get(phase, (1.0, "", phase))
            for i, method in enumerate(methods):
                r = lookup.get((method, phase, task))
                if r is None or r["mean"] is None:
                    continue
                ax.bar(
                    i + (j - (len(phases) - 1) / 2) * width, r["mean"], width,
                    yerr=r["ci95"], capsize=2, color=_tint(method_colour(method), keep),
                    edgecolor="0.25", linewidth=0.5, hatch=hatch,
                    error_kw={"elinewidth": 0.8},
                )  # fmt: skip
        ax.axhline(0.1, color="0.35", ls="--", lw=1)
        ax.set_xticks(range(len(methods)), methods, rotation=50, ha="right", fontsize=8)
        ax.set_title(f"accuracy on task {task} (digits {digits})", fontsize=10)
        ax.set_ylim(0, min(1.0, 1.1 * top))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (10-way output)")
    handles = []
    for phase in phases:
        keep, hatch, label = _PHASES.get(phase, (1.0, "", f"after {phase}"))
        handles.append(Patch(facecolor=_tint("#555555", keep), edgecolor="0.25", hatch=hatch,
                             label=label))  # fmt: skip
    handles.append(Line2D([], [], color="0.35", ls="--", lw=1, label="chance (1/10)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(_wrap(interrupt_title(payload), fig), fontsize=10)
    return fig


# ---- re-plotting a recorded run ------------------------------------------------------------


def _kind(payload: dict) -> str:
    rows = payload.get("results")
    if not isinstance(rows, list) or not rows:
        raise ValueError("A `results.json` from `pcastro oneshot`, `interrupt` or `continual` "
                         "holds a non-empty list `results`; this one does not.")  # fmt: skip
    if "phase" in rows[0]:
        return "interrupt"
    if "metric" in rows[0]:
        return "oneshot"
    if "matrix_mean" in rows[0]:
        return "continual"
    raise ValueError(
        f"Cannot tell which benchmark wrote these results (a row has {sorted(rows[0])}); "
        "expected the rows of `pcastro oneshot`, `interrupt` or `continual`."
    )


def plot_results(results_json, out_dir=None) -> list[Path]:
    """Draw the figures of a recorded run from its `results.json` alone, without
    running anything: the same figures the command writes.

    **Arguments:**

    - `results_json`: the path of a `results.json` written by `pcastro oneshot`,
      `pcastro interrupt` or `pcastro continual`.
    - `out_dir`: the folder to write the figures to (default: the folder of
      `results_json`).

    **Returns:**

    The paths written: `results.png` (and `frontier.png` when the run scored every grid
    point) for one-shot and interruption runs; `curves.png`, `matrices.png` and
    `final.png` for continual runs.

    **Raises:**

    `ValueError` when the file is not the record of one of those commands.
    """
    results_json = Path(results_json)
    payload = json.loads(results_json.read_text())
    out = Path(out_dir) if out_dir is not None else results_json.parent
    kind = _kind(payload)
    payload = current_names(payload, kind)  # a record older than a rename
    if kind == "continual":
        from ._continual_report import write_figures

        return write_figures(out, payload)
    plt = _pyplot()
    figures = {"results.png": (oneshot_figure if kind == "oneshot" else interrupt_figure)}
    if kind == "oneshot" and payload.get("details", {}).get("frontier"):
        figures["frontier.png"] = frontier_figure
    paths = []
    for name, draw in figures.items():
        fig = draw(payload)
        paths.append(_save_figure(fig, out / name))
        plt.close(fig)
    return paths
