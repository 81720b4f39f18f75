"""Tables and figures of the continual-learning benchmark."""

import textwrap
from pathlib import Path

import numpy as np

from ._records import grid_edges
from ._report import _save_figure, format_selection, format_table

# Published split-MNIST class-IL accuracies (final, averaged over contexts), each with
# its source and how far it was checked; see benchmarks/README.md for the protocol
# differences.
PUBLISHED = (
    ("fine-tuning ('None')", 0.1990, "van de Ven & Tolias 2018 (RtF), Table 3; same in 2019"),
    ("EWC", 0.2001, "van de Ven & Tolias 2019 v1 (seen only as quoted)"),
    ("DGR", 0.9124, "van de Ven & Tolias 2018 (RtF), Table 3 (2019 v1 quoted: 0.9079)"),
    ("iCaRL (2,000 exemplars)", 0.9457, "van de Ven & Tolias 2019 v1 (seen only as quoted)"),
    ("joint ('Offline')", 0.9793, "van de Ven & Tolias 2018 (RtF), Table 3"),
    ("naive rehearsal (1,100 samples)", 0.9078, "Hsu et al. 2018, Table 2"),
)


def paired_rows(results: list[dict]) -> list[dict]:
    """Per budget, every store variant minus each control (uniform store replay, PC
    experience replay) on the same seeds, with the 95% CI of the mean difference."""
    from ._continual import paired_differences

    by = {(r["method"], r["budget"]): r["per_seed"] for r in results}
    budgets = sorted({r["budget"] for r in results if r["budget"] is not None})
    return paired_differences(by, budgets)


def merge_parts(parts: list[dict]) -> dict:
    """One payload from several runs on the same seeds (their results concatenated; a
    method and budget present twice keeps the first); a run recorded under former method
    names reads under the current ones."""
    from ._methods import current_names

    parts = [current_names(p, "continual") for p in parts]
    seen, results, selected, wall = set(), [], {}, {}
    for p in parts:
        for r in p["results"]:
            if (r["method"], r["budget"]) not in seen:
                seen.add((r["method"], r["budget"]))
                results.append(r)
        selected.update(p["details"]["selected"])
        wall[",".join(p["config"]["methods"])] = p["details"]["wall_s"]
    from ._continual import METHODS

    results.sort(key=lambda r: (METHODS.index(r["method"]), r["budget"] or 0))
    merged = dict(parts[0])
    merged["results"] = results
    merged["paired"] = paired_rows(results)
    merged["details"] = {**parts[0]["details"], "selected": selected, "wall_s_per_part": wall}
    merged["details"]["wall_s"] = sum(wall.values())
    merged["config"] = {**parts[0]["config"], "methods": [r["method"] for r in results]}
    return merged


def _with_edges(selection: dict) -> dict:
    """A selection with `at_edge`; one recorded before `at_edge` was kept gets it from
    its candidates, which are every point of the grid."""
    if "at_edge" in selection or not selection.get("candidates"):
        return selection
    names = [k for k in selection["candidates"][0] if k != "val_final_acc"]
    grid = {k: list(dict.fromkeys(c[k] for c in selection["candidates"])) for k in names}
    return {**selection, "at_edge": grid_edges(selection, grid)}


def result_table(payload: dict) -> str:
    rows = [
        {
            "method": r["method"],
            "budget": "" if r["budget"] is None else r["budget"],
            "slots": r["capacity"] or "",
            "MB": f"{r['memory_bytes'] / 1e6:.2f}" if r["memory_bytes"] else "",
            "final acc": f"{r['mean']:.3f} ± {r['ci95']:.3f}",
            "n": r["n"],
            "collapsed": r.get("collapsed_seeds", ""),
            "flagged": r.get("flagged_seeds", ""),
            "failed solves": sum(r["failed_per_seed"]) if "failed_per_seed" in r else "",
            "compile s": f"{r['compile_s']:.0f}",
            "run s": f"{r['run_s']:.0f}",
        }
        for r in payload["results"]
    ]
    text = format_table(rows, list(rows[0]))
    selected = payload.get("details", {}).get("selected") or {}
    if selected:
        text += "\n\nselected on validation (edge of grid: the best setting may lie outside it)\n"
        text += "\n".join(
            f"  {name}: {format_selection(_with_edges(sel))}" for name, sel in selected.items()
        )
    paired = payload.get("paired") or []
    if paired:
        prow = [
            {
                "variant": p["method"],
                "minus": p["control"],
                "budget": p["budget"],
                "paired diff": f"{p['mean_diff']:+.4f} ± {p['ci95']:.4f}",
                "CI excludes 0": "yes" if p["excludes_zero"] else "no",
            }
            for p in paired
        ]
        text += "\n\npaired differences (same seeds, same data order), mean ± 95% CI\n"
        text += format_table(prow, list(prow[0]))
    text += "\n\npublished (split MNIST, class-IL; protocols differ, see benchmarks/README.md)\n"
    text += format_table(
        [{"method": m, "acc": f"{a:.3f}", "source": s} for m, a, s in PUBLISHED],
        ["method", "acc", "source"],
    )
    return text + "\n"


def continual_title(payload: dict) -> str:
    """What a continual run did, from its own configuration."""
    cfg = payload["config"]
    rules = {r["method"].split("_")[0] for r in payload["results"]}
    solvers = {"adaptive": "AdaptiveEuler", "euler": f"Euler, dt {cfg.get('dt')}"}
    solver = cfg.get("solver")
    solver = f", PC solver {solvers.get(solver, solver)}" if "pc" in rules and solver else ""
    return (
        f"split-{cfg['dataset']} class-IL, {cfg['iterations']:,} iterations per context, "
        f"{cfg['seeds']} seeds{solver}"
    )


def write_outputs(out: Path, payload: dict, *, title: str | None = None) -> list[Path]:
    """`table.txt`, `table.md` and the figures of `write_figures`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.txt").write_text(result_table(payload))
    (out / "table.md").write_text(markdown_tables(payload))
    return [out / "table.txt", out / "table.md", *write_figures(out, payload, title=title)]


def write_figures(out: Path, payload: dict, *, title: str | None = None) -> list[Path]:
    """`curves.png` (learning curves with context boundaries), `matrices.png` (accuracy
    matrices) and, with memory methods, `final.png`; titled `title` (default: from the
    run's configuration), every method in its colour (`method_colour`)."""
    import matplotlib

    matplotlib.use("Agg")

    title = title or continual_title(payload)
    out = Path(out)
    results = payload["results"]
    # The curves and matrices show the methods without memory and the largest budget.
    budgets = sorted({r["budget"] for r in results if r["budget"] is not None}) or [None]
    shown = [r for r in results if r["budget"] in (None, budgets[-1])]
    paths = [_curves(out, results, shown, title), _matrices(out, shown, title)]
    if any(r["budget"] is not None for r in results):
        paths.append(_final(out, results, title))
    return paths


def _curves(out: Path, results, shown, title: str) -> Path:
    """Learning curves: mean over seeds of the mean accuracy over contexts seen so far."""
    import matplotlib.pyplot as plt

    from ._figures import method_colour

    fig, ax = plt.subplots(figsize=(10.5, 4.2), layout="constrained")
    for r in shown:
        curve = np.asarray(r["curve_mean"])  # (contexts, points, contexts)
        contexts, points, _ = curve.shape
        seen = np.stack([curve[t, :, : t + 1].mean(-1) for t in range(contexts)]).ravel()
        xs = (np.arange(contexts * points) + 1) / points
        style = "-" if r["method"].startswith("pc") else "--"
        label = r["method"] + ("" if r["budget"] is None else f" M={r['budget']}")
        ax.plot(xs, seen, style, label=label, lw=1.2, color=method_colour(r["method"]))
    for t in range(1, len(results[0]["curve_mean"])):
        ax.axvline(t, color="k", lw=0.6, alpha=0.4)
    ax.set_xlabel("context (boundaries marked)")
    ax.set_ylabel("test accuracy on contexts seen so far")
    ax.set_ylim(0, 1)
    # Beside the axes, so that it never covers a curve.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(textwrap.fill(title + " — learning curves", 100), fontsize=9)
    path = _save_figure(fig, out / "curves.png")
    plt.close(fig)
    return path


def _matrices(out: Path, shown, title: str) -> Path:
    """The mean accuracy matrices `A[t, c]`, one panel per method."""
    import matplotlib.pyplot as plt

    n = len(shown)
    cols = min(n, 5)
    rows_ = -(-n // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(2.3 * cols, 2.4 * rows_), squeeze=False)
    for ax, r in zip(axes.ravel(), shown):
        m = np.asarray(r["matrix_mean"])
        ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(m):
            colour = "k" if v > 0.6 else "w"  # legible on viridis' light and dark ends
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=6, color=colour)
        label = r["method"] + ("" if r["budget"] is None else f"\nM={r['budget']}")
        ax.set_title(label, fontsize=7)
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(
        textwrap.fill(title + " — A[after context t (rows), on context c]", 90), fontsize=8
    )
    fig.tight_layout()
    path = _save_figure(fig, out / "matrices.png")
    plt.close(fig)
    return path


def _final(out: Path, results, title: str) -> Path:
    """Final accuracy against the memory budget, the methods without memory as lines."""
    import matplotlib.pyplot as plt

    from ._figures import method_colour

    memory = [r for r in results if r["budget"] is not None]
    fig, ax = plt.subplots(figsize=(8.5, 4), layout="constrained")
    for name in dict.fromkeys(r["method"] for r in memory):
        rs = sorted((r for r in memory if r["method"] == name), key=lambda r: r["budget"])
        ax.errorbar(
            [r["budget"] for r in rs], [r["mean"] for r in rs], yerr=[r["ci95"] for r in rs],
            marker="o", capsize=2, label=name, ls="-" if name.startswith("pc") else "--",
            color=method_colour(name),
        )  # fmt: skip
    for r in results:
        if r["budget"] is None:
            colour = method_colour(r["method"])
            label = f"{r['method']} (no memory)"
            ax.axhline(r["mean"], lw=1.0, ls=":", color=colour, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("memory budget M (raw exemplars; the store gets the same bytes)")
    ax.set_ylabel("final accuracy (mean, 95% CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(textwrap.fill(title + " — accuracy vs memory", 90), fontsize=9)
    path = _save_figure(fig, out / "final.png")
    plt.close(fig)
    return path


def markdown_tables(payload: dict) -> str:
    """The README tables: final accuracy per method and budget (PC beside backprop), and
    the paired differences of the store variants."""
    by = {(r["method"], r["budget"]): r for r in payload["results"]}
    budgets = sorted({r["budget"] for r in payload["results"] if r["budget"] is not None})

    def cell(name, budget):
        r = by.get((name, budget))
        return "" if r is None else f"{r['mean']:.3f} ± {r['ci95']:.3f}"

    names = list(dict.fromkeys(r["method"] for r in payload["results"]))
    lines = ["| method | " + " | ".join(f"M = {b}" for b in budgets) + " |"]
    lines.append("|---" * (len(budgets) + 1) + "|")
    for name in names:
        if (name, None) in by:
            lines.append(f"| {name} | " + cell(name, None) + " |" * len(budgets))
        else:
            lines.append(f"| {name} | " + " | ".join(cell(name, b) for b in budgets) + " |")
    bytes_row = {
        r["method"]: r for r in payload["results"] if r["budget"] == (budgets[-1] if budgets else 0)
    }
    if bytes_row:
        lines.append("")
        lines.append(
            "Memory at M = "
            + str(budgets[-1])
            + ": "
            + ", ".join(
                f"{n} {r['memory_bytes'] / 1e6:.2f} MB ({r['capacity']} items)"
                for n, r in bytes_row.items()
            )
        )
    paired = payload.get("paired") or []
    if paired:
        lines += ["", "| variant − control | " + " | ".join(f"M = {b}" for b in budgets) + " |"]
        lines.append("|---" * (len(budgets) + 1) + "|")
        pairs = dict.fromkeys((p["method"], p["control"]) for p in paired)
        look = {(p["method"], p["control"], p["budget"]): p for p in paired}
        for method, control in pairs:
            cells = []
            for b in budgets:
                p = look.get((method, control, b))
                mark = "" if p is None or not p["excludes_zero"] else " *"
                cells.append("" if p is None else f"{p['mean_diff']:+.3f} ± {p['ci95']:.3f}{mark}")
            lines.append(f"| {method} − {control} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("`*`: the 95% CI of the paired difference excludes 0.")
    return "\n".join(lines) + "\n"
