"""`benchmarks/oneshot_seeds.py`: paired differences across seeds, per protocol."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import oneshot_seeds  # noqa: E402


def _run(seed, dataset, metrics, means, selected):
    rng = np.random.default_rng(seed)
    rows = [
        {"method": m, "metric": k, "values": (mu + 0.01 * rng.standard_normal(40)).tolist()}
        for m, mu in means.items()
        for k in metrics
    ]
    return {
        "name": f"s{seed}",
        "seed": seed,
        "command": f"pcastro oneshot --seed {seed}",
        "config": {"dataset": dataset},
        "results": rows,
        "details": {"selected": selected},
    }


def test_omniglot_runs_are_summarised_on_their_own_metrics():
    metrics = ("official_runs_20way", "random_5way", "random_20way")
    means = {"pc_sgd": 0.38, "pc_astro_target": 0.40, "proto_cos@pc": 0.39,
             "proto_cos@bp": 0.41, "pixel_nn": 0.2}  # fmt: skip
    selected = {"pc_sgd/5-way": {"lr": 0.1, "val_acc": 0.5, "at_edge": []}}
    runs = [_run(s, "omniglot", metrics, means, selected) for s in range(3)]
    summary = oneshot_seeds.summarise(runs)
    assert summary["protocol"] == "omniglot" and summary["metrics"][0] == "random_20way"
    assert summary["best_baseline"] == "proto_cos@bp"
    asked = {(r["method"], r["vs"]) for r in summary["comparisons"]}
    assert ("pc_astro_target", "pc_sgd") in asked and ("proto_cos@pc", "proto_cos@bp") in asked
    row = next(
        r for r in summary["comparisons"]
        if (r["method"], r["vs"], r["metric"]) == ("pc_astro_target", "pc_sgd", "random_20way")
    )  # fmt: skip
    assert row["diff"] == pytest.approx(0.02, abs=0.01) and len(row["per_seed"]) == 3
    assert "holm_5pct" in row
    assert summary["selected"]["pc_sgd/5-way"][0]["lr"] == 0.1
    text = oneshot_seeds.markdown(summary)
    assert "One-shot Omniglot" in text and "| method | 20-way | 5-way | official |" in text


def test_transfer_runs_keep_the_ten_way_table():
    metrics = ("ten_way_accuracy", "novel_accuracy", "base_retention")
    means = {"pc_sgd": 0.5, "pc_astro_target": 0.55, "imprint@pc": 0.56, "imprint@bp": 0.6}
    runs = [_run(s, "mnist", metrics, means, {}) for s in range(2)]
    summary = oneshot_seeds.summarise(runs)
    assert summary["protocol"] == "transfer" and summary["best_baseline"] == "imprint@bp"
    assert "| method | ten-way | novel | base | ten-way per seed |" in oneshot_seeds.markdown(
        summary
    )
