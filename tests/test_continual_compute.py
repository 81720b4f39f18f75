"""`benchmarks/continual_compute.py`: replay compute of the split-MNIST methods from
measured per-example operations."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import continual_compute  # noqa: E402

COST = {"fresh": 10.0, "step": 2.0, "relax": 7.0, "backprop": 5.0, "inference_steps": 3}


def _method(name, *, replayed=128, relaxed=None, capacity=200, budget=200):
    return {
        "method": name, "budget": budget, "capacity": capacity, "bytes_per_item": 3140.0,
        "replayed_per_iteration": replayed,
        "relaxed_for_replay_per_iteration": replayed if relaxed is None else relaxed,
        "inference_steps_for_replay_per_iteration": 3 * replayed, "mean": 0.7, "ci95": 0.01,
        "n": 3, "per_seed": [0.69, 0.7, 0.71],
    }  # fmt: skip


def test_replay_operations_per_method():
    config = {"resume_steps": 1}
    flops = continual_compute.replay_flops
    assert flops(_method("backprop_er"), config, COST) == 128 * 5.0
    assert flops(_method("pc_er"), config, COST) == 128 * 10.0
    # Two steps fewer than a fresh replay's three (the feedforward start counted as spent).
    assert flops(_method("pc_store_resume"), config, COST) == 128 * (10.0 - 2 * 2.0)
    # 195 slots re-measured every 50 iterations: 3.9 relaxations per iteration.
    refreshed = _method("pc_store_priority_lean", relaxed=128 + 195 / 50, capacity=195)
    assert flops(refreshed, config, COST) == pytest.approx(128 * 10.0 + 3.9 * 7.0)


def test_measured_operations_grow_as_the_network_does(tmp_path):
    config = {"hidden": [16], "solver": "euler", "dt": 0.1, "inference_steps": 2}
    small = continual_compute.per_example_flops(config)
    large = continual_compute.per_example_flops({**config, "hidden": [64]})
    for part in ("fresh", "step", "relax", "backprop"):
        assert 0 < small[part] < large[part]
    # Learning from an example costs more than relaxing it; relaxing more than one step.
    assert large["fresh"] > large["relax"] > large["step"]
    # Backprop's forward-backward on 784-64-10 is at least its two matrix products' 2 * MACs.
    assert large["backprop"] >= 2 * (784 * 64 + 64 * 10)
    summary = {"config": {**config, "hidden": [16]}, "methods": {
        "pc_er@200": _method("pc_er"), "backprop_er@200": _method("backprop_er"),
        "pc_joint@None": {**_method("pc_joint"), "budget": None}}}  # fmt: skip
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    result = continual_compute.main([str(tmp_path / "run"), "--out", str(tmp_path / "out")])
    assert [r["method"] for r in result["rows"]] == ["pc_er", "backprop_er"]
    assert (tmp_path / "out" / "compute.png").stat().st_size > 0
    assert "| 200 | backprop_er | run |" in (tmp_path / "out" / "compute.md").read_text()


def test_a_folder_without_its_summary_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="run `python benchmarks/continual_seeds.py"):
        continual_compute.main([str(tmp_path), "--out", str(tmp_path / "out")])
