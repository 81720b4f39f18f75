"""The benchmark figures and printouts: paired differences drawn, one colour per method in
every figure, selections printed rounded and flagged at the edge of their grid."""

import json
import sys

import numpy as np
import pytest
from matplotlib.colors import to_hex

from pcastro.bench import _continual_report as continual_report, plot_results, select_on_validation
from pcastro.bench._compare import paired_differences
from pcastro.bench._conditions import CONDITIONS
from pcastro.bench._continual import METHODS as CONTINUAL_METHODS
from pcastro.bench._figures import (
    METHOD_COLOURS,
    READOUT_COLOURS,
    frontier_figure,
    interrupt_figure,
    method_colour,
    oneshot_figure,
)
from pcastro.bench._oneshot import PROTOCOLS
from pcastro.bench._readouts import READOUTS
from pcastro.bench._records import grid_edges, result_row
from pcastro.bench._report import format_selection

METHODS = ("pc", "pc_astro", "imprint@pc", "imprint@bp", "pixel_nn")
MEANS = {"pc": 0.44, "pc_astro": 0.45, "imprint@pc": 0.43, "imprint@bp": 0.435, "pixel_nn": 0.42}


def _oneshot_payload(metrics=("accuracy",), *, frontier=False) -> dict:
    """A scratch-like record: every method on the same 40 episodes, means about 0.01
    apart (the effect the figure must show)."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.03, size=40)
    results = [
        result_row(m, np.clip(MEANS[m] + noise + rng.normal(0, 0.01, 40), 0, 1), metric=k)
        for m in METHODS
        for k in metrics
    ]
    details = {"paired": paired_differences(results), "selected": {}}
    if frontier:
        details["frontier"] = {
            m: {"novel": [0.1, 0.3, 0.2], "base": [0.9, 0.6, 0.8], "selected": 0, "episodes": 5}
            for m in METHODS
        }
    config = dict(dataset="digits", protocol="scratch", ways=10, shots=1, episodes=40, seed=3)
    return {"config": config, "seed": 3, "results": results, "details": details}


def _interrupt_payload() -> dict:
    results = [
        {"method": m, "phase": p, "task": t, "mean": 0.3 + 0.1 * i, "ci95": 0.02, "n": 4}
        for i, m in enumerate(METHODS)
        for p in ("A_k", "B", "final")
        for t in ("A", "B")
    ]
    config = dict(dataset="digits", shots=1, episodes=4, interrupt_fraction=0.5)
    return {"config": config, "seed": 0, "results": results, "details": {"selected": {}}}


def _continual_payload() -> dict:
    contexts = 5
    matrix = np.tril(np.full((contexts, contexts), 0.9)).tolist()
    curve = np.full((contexts, 2, contexts), 0.5).tolist()
    results = [
        {
            "method": m,
            "budget": budget,
            "capacity": budget or 0,
            "memory_bytes": 0,
            "mean": 0.5,
            "ci95": 0.01,
            "n": 2,
            "per_seed": [0.5, 0.5],
            "matrix_mean": matrix,
            "curve_mean": curve,
            "compile_s": 1.0,
            "run_s": 1.0,
        }  # fmt: skip
        for m in METHODS
        for budget in ((None,) if m == "pixel_nn" else (10, 20))
    ]
    config = dict(dataset="digits", iterations=30, seeds=2, solver="adaptive")
    return {"config": config, "results": results, "paired": [], "details": {"selected": {}}}


# ---- the one-shot figure ---------------------------------------------------------------------


def test_oneshot_figure_draws_the_paired_differences():
    payload = _oneshot_payload()
    fig = oneshot_figure(payload)
    accuracy, differences = fig.axes
    # The differences panel: every PC method minus the best baseline, with its interval.
    (best,) = {p["vs"] for p in payload["details"]["paired"]}
    assert best in differences.get_title() and "PC method" in differences.get_title()
    labels = [t.get_text() for t in differences.get_yticklabels()]
    assert labels == ["pc", "pc_astro"]
    drawn = {
        labels[int(line.get_ydata()[0])]: line.get_xdata()[0]
        for line in differences.lines
        if line.get_marker() == "o"
    }
    want = {p["method"]: p["diff"] for p in payload["details"]["paired"]}
    assert drawn == pytest.approx(want)
    assert any(list(line.get_xdata()) == [0, 0] for line in differences.lines)  # zero line
    lo, hi = differences.get_xlim()
    assert lo < 0 < hi
    # The accuracy axis fits the data (differences of 0.01 stay visible), not 0-1.
    lo, hi = accuracy.get_xlim()
    rows = payload["results"]
    assert lo <= min(r["mean"] - r["ci95"] for r in rows) and hi >= max(
        r["mean"] + r["ci95"] for r in rows
    )
    assert hi - lo < 0.3
    # Chance (1/10) lies off this axis, and the axis says so.
    assert "chance 1/10" in accuracy.get_xlabel() and "left of the axis" in accuracy.get_xlabel()
    # The title comes from the run's configuration.
    title = fig._suptitle.get_text()
    for part in ("scratch", "digits", "10-way 1-shot", "40 test episodes", "seed 3"):
        assert part in title.replace("\n", " ")


def test_oneshot_figure_draws_chance_when_it_is_on_the_axis():
    payload = _oneshot_payload()
    for r in payload["results"]:
        if r["method"] == "pixel_nn":
            r["mean"] = 0.05
    accuracy = oneshot_figure(payload).axes[0]
    assert any(list(line.get_xdata()) == [0.1, 0.1] for line in accuracy.lines)
    assert "dashed: chance (1/10)" in accuracy.get_xlabel()


def test_oneshot_figure_marks_pc_methods_not_readouts_on_a_pc_body():
    fig = oneshot_figure(_oneshot_payload())
    weight = {t.get_text(): t.get_fontweight() for t in fig.axes[0].get_yticklabels()}
    assert weight["pc"] == "bold" and weight["pc_astro"] == "bold"
    assert weight["imprint@pc"] == "normal" and weight["pixel_nn"] == "normal"


def test_plot_results_redraws_a_recorded_run(tmp_path):
    (tmp_path / "results.json").write_text(
        json.dumps(_oneshot_payload(("novel_accuracy", "base_retention"), frontier=True))
    )
    paths = plot_results(tmp_path / "results.json")
    assert [p.name for p in paths] == ["results.png", "frontier.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    (tmp_path / "results.json").write_text(json.dumps({"results": [{"x": 1}]}))
    with pytest.raises(ValueError, match="Cannot tell which benchmark"):
        plot_results(tmp_path / "results.json")


# ---- one colour per method -------------------------------------------------------------------


def _colours_by_label(ax, labels, lines):
    return {labels[int(line.get_ydata()[0])]: to_hex(line.get_color()) for line in lines}


def test_a_method_has_one_colour_in_every_figure(monkeypatch, tmp_path):
    seen = {}  # figure -> {method: colour}
    fig = oneshot_figure(_oneshot_payload())
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    seen["oneshot"] = _colours_by_label(ax, labels, [x for x in ax.lines if x.get_marker() == "o"])

    fig = frontier_figure(_oneshot_payload(frontier=True))
    seen["frontier"] = {
        label: to_hex(handle.get_color())
        for ax in fig.axes
        for handle, label in zip(*ax.get_legend_handles_labels())
    }

    fig = interrupt_figure(_interrupt_payload())
    bars = fig.axes[0].patches[-len(METHODS) :]  # the last phase: the method's own colour
    seen["interrupt"] = {m: to_hex(b.get_facecolor()) for m, b in zip(METHODS, bars)}

    figures = []
    monkeypatch.setattr(
        continual_report, "_save_figure", lambda fig, path: figures.append(fig) or path
    )
    continual_report.write_outputs(tmp_path, _continual_payload())
    curves = figures[0].axes[0]
    seen["continual"] = {
        label.split(" ")[0]: to_hex(handle.get_color())
        for handle, label in zip(*curves.get_legend_handles_labels())
    }

    for figure, colours in seen.items():
        assert set(colours) == set(METHODS), figure
        for method, colour in colours.items():
            assert colour == method_colour(method), (figure, method)
    # Different methods, different colours, in every panel (the frontier panels included).
    for colours in seen.values():
        assert len(set(colours.values())) == len(colours)


def test_a_readout_on_a_pc_body_takes_the_readouts_colour():
    assert method_colour("imprint@pc") == method_colour("imprint") == READOUT_COLOURS["imprint"][0]
    assert method_colour("imprint@bp") == READOUT_COLOURS["imprint"][1]
    pc_colours = {c for name, c in METHOD_COLOURS.items() if name.startswith("pc")}
    assert method_colour("imprint@pc") not in pc_colours


def test_every_named_method_has_its_own_colour():
    names = set(PROTOCOLS["scratch"][1]) | set(PROTOCOLS["transfer"][1])
    names |= {f"{r}@{body}" for r in READOUTS for body in ("pc", "bp")}
    names |= set(CONDITIONS) | set(CONTINUAL_METHODS)
    names -= set(READOUTS)  # a read-out on a fresh network shares its @pc colour
    for name in names:
        assert name in METHOD_COLOURS or name.partition("@")[0] in READOUT_COLOURS, name
    colours = [method_colour(n) for n in sorted(names)]
    assert len(set(colours)) == len(colours)
    # Unknown names get a fixed colour too.
    assert method_colour("pc_sgd_cover_random25-0") == method_colour("pc_sgd_cover_random25-0")


# ---- printed selections and the edge of the grid ----------------------------------------------


def test_a_selection_prints_rounded():
    text = format_selection({"lr": 0.01, "updates": 6, "val_acc": 0.6866666078567505})
    assert text == "lr=0.01, updates=6, val_acc=0.687"
    text = format_selection({"lr": np.float32(3e-4), "candidates": [{}, {}, {}]})
    assert text == "lr=0.0003, candidates: 3"


def test_a_choice_at_the_edge_of_its_grid_is_flagged():
    grid = {"lr": (1e-3, 1e-2, 1e-1), "updates": (1, 3, 10), "init": ("a", "b")}
    scores = np.zeros((3, 3, 2))
    scores[0, 1, 1] = 1.0  # smallest lr, middle update count
    chosen, _ = select_on_validation(scores, grid)
    assert grid_edges(chosen, grid) == ["lr"]
    assert format_selection({**chosen, "at_edge": ["lr"]}) == (
        "lr=0.001 (edge of grid), updates=3, init=b"
    )
    scores[:] = 0.0
    scores[1, 1, 0] = 1.0  # interior on every numeric axis
    chosen, _ = select_on_validation(scores, grid)
    assert grid_edges(chosen, grid) == []
    assert "edge" not in format_selection({**chosen, "at_edge": []})
    # The largest value is an edge too, wherever it sits in the grid's order.
    assert grid_edges({"bias": 0.4}, {"bias": (0.0, -0.4, 0.4, 0.2)}) == ["bias"]
    assert grid_edges({"bias": 0.0}, {"bias": (0.0, -0.4, 0.4, 0.2)}) == []
    # No edge on a single value, or on booleans.
    assert grid_edges({"lr": 0.1, "fresh": True}, {"lr": (0.1,), "fresh": (False, True)}) == []


@pytest.mark.parametrize(
    "argv0, recorded",
    [
        ("/somewhere/bin/pcastro", "pcastro"),
        ("/somewhere/site-packages/pcastro/cli.py", "pcastro"),
        ("benchmarks/interrupt.py", "interrupt.py"),
    ],
)
def test_the_recorded_command_names_the_program(argv0, recorded, monkeypatch):
    from pcastro.bench._report import environment

    monkeypatch.setattr(sys, "argv", [argv0, "oneshot", "--seed", "1"])
    assert environment(1)["command"] == f"{recorded} oneshot --seed 1"


@pytest.mark.parametrize("given", [["--data-dir", "/data/here/mnist"], ["--data-dir=/data/x"]])
def test_the_recorded_command_and_config_hide_the_data_folder(given, monkeypatch):
    from pcastro.bench import ContinualConfig
    from pcastro.bench._report import environment, resolved_config

    monkeypatch.setattr(sys, "argv", ["pcastro", "continual", *given, "--seeds", "2"])
    command = environment(0)["command"]
    assert "/data" not in command and "DIR" in command and command.endswith("--seeds 2")
    config = resolved_config(ContinualConfig(data_dir="/data/here/mnist"), [], features=784)
    assert config["data_dir"] == "DIR"
    assert resolved_config(ContinualConfig(), [], features=784)["data_dir"] is None
