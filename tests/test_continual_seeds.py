"""`benchmarks/continual_seeds.py`: parts of split-MNIST runs paired by seed, each method
against the controls before it, Holm over the table, and parts that would not pair
refused."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import continual_seeds  # noqa: E402

CONFIG = dict(dataset="mnist", iterations=2000, inference_steps=3, replay_batch=128,
              refresh_every=50, priority_alphas=[1.0])  # fmt: skip


def _row(method, per_seed, *, budget=200, capacity=200, failed=(0, 0, 0)):
    return {
        "method": method, "budget": budget, "capacity": capacity,
        "memory_bytes": 785 * 4 * 200, "per_seed": per_seed, "collapsed_seeds": 0,
        "failed_per_seed": list(failed), "status_counts_per_seed": {}, "run_s": 1.0,
    }  # fmt: skip


def _part(folder, name, rows, *, seeds=(1000, 1001, 1002), lr=1e-3, seeds_count=3, **config):
    methods = [r["method"] for r in rows]
    payload = {
        "config": {**CONFIG, **config, "methods": methods, "seeds": seeds_count},
        "command": f"pcastro continual --methods {','.join(methods)}",
        "details": {
            "test_seeds": list(seeds),
            "selected": {m: {"lr": lr, "val_final_acc": 0.5} for m in methods},
        },
        "results": rows,
    }
    path = folder / "parts" / name
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps(payload))


def test_methods_pair_with_the_controls_before_them(tmp_path):
    _part(tmp_path, "replay", [
        _row("backprop_er", [0.80, 0.82, 0.84]),
        _row("pc_er", [0.78, 0.80, 0.81], failed=(0, 2, 0)),
        _row("pc_store_uniform_lean", [0.79, 0.80, 0.83], capacity=195),
    ])  # fmt: skip
    _part(tmp_path, "priority", [_row("pc_store_priority_lean", [0.81, 0.83, 0.85], capacity=195)],
          priority_alphas=[0.5, 1.0])  # fmt: skip
    summary = continual_seeds.main([str(tmp_path)])
    pairs = [(r["method"], r["vs"]) for r in summary["comparisons"]]
    assert pairs == [
        ("pc_er", "backprop_er"),
        ("pc_store_uniform_lean", "backprop_er"),
        ("pc_store_uniform_lean", "pc_er"),
        ("pc_store_priority_lean", "backprop_er"),
        ("pc_store_priority_lean", "pc_er"),
        ("pc_store_priority_lean", "pc_store_uniform_lean"),
    ]
    first = summary["comparisons"][0]
    assert first["per_seed"] == pytest.approx([-0.02, -0.02, -0.03])
    assert "holm_5pct" in first
    lean = summary["methods"]["pc_store_priority_lean@200"]
    # 128 replayed, plus every one of 195 slots re-measured every 50 iterations.
    assert lean["relaxed_for_replay_per_iteration"] == pytest.approx(128 + 195 / 50)
    assert lean["inference_steps_for_replay_per_iteration"] == pytest.approx(3 * (128 + 195 / 50))
    assert summary["methods"]["backprop_er@200"]["relaxed_for_replay_per_iteration"] == 0
    assert summary["methods"]["pc_er@200"]["failed_solves_per_seed"] == [0, 2, 0]
    text = (tmp_path / "summary.md").read_text()
    assert "Holm over all 6 comparisons" in text and "| pc_er | 200 |" in text


def test_resumed_replay_pairs_with_fresh_replay_from_the_same_store(tmp_path):
    _part(tmp_path, "resume", [
        _row("pc_store_uniform", [0.61, 0.59, 0.61], capacity=98),
        _row("pc_store_resume", [0.60, 0.53, 0.55], capacity=98),
    ], resume_steps=1)  # fmt: skip
    summary = continual_seeds.main([str(tmp_path)])
    (row,) = summary["comparisons"]
    assert (row["method"], row["vs"]) == ("pc_store_resume", "pc_store_uniform")
    assert row["per_seed"] == pytest.approx([-0.01, -0.06, -0.06])
    # 128 replayed slots, continued for 1 step each instead of 3 from a fresh start.
    resume = summary["methods"]["pc_store_resume@200"]
    assert resume["inference_steps_for_replay_per_iteration"] == 128


def test_blocks_of_further_seeds_join_seed_by_seed_and_pair_on_common_seeds(tmp_path):
    _part(tmp_path, "replay", [
        _row("pc_er", [0.78, 0.80, 0.81], failed=(0, 2, 0)),
        _row("pc_store_uniform_lean", [0.79, 0.80, 0.83], capacity=195),
    ])  # fmt: skip
    _part(tmp_path, "replay_b", [
        _row("pc_er", [0.70, 0.72], failed=(1, 0)),
        _row("pc_store_uniform_lean", [0.74, 0.71], capacity=195),
    ], seeds=(1004, 1003), seeds_count=2, first_test_seed=3)  # fmt: skip
    summary = continual_seeds.main([str(tmp_path)])
    er = summary["methods"]["pc_er@200"]
    assert er["test_seeds"] == [1000, 1001, 1002, 1003, 1004]
    assert er["per_seed"] == [0.78, 0.80, 0.81, 0.72, 0.70]
    assert er["failed_solves_per_seed"] == [0, 2, 0, 0, 1]
    assert er["parts"] == ["replay", "replay_b"] and er["run_s"] == 2.0
    (row,) = summary["comparisons"]
    assert row["seeds"] == [1000, 1001, 1002, 1003, 1004] and row["n_seeds"] == 5
    assert row["per_seed"] == pytest.approx([0.01, 0.0, 0.02, -0.01, 0.04])
    # A method with a block its control lacks pairs on the seeds both ran.
    _part(tmp_path, "priority", [_row("pc_store_priority_lean", [0.9, 0.9], capacity=195)],
          seeds=(1001, 1003))  # fmt: skip
    summary = continual_seeds.main([str(tmp_path)])
    vs_er = next(r for r in summary["comparisons"] if r["method"] == "pc_store_priority_lean")
    assert vs_er["seeds"] == [1001, 1003]
    assert vs_er["per_seed"] == pytest.approx([0.1, 0.18])
    assert "| 2 |" in (tmp_path / "summary.md").read_text()


def test_parts_that_would_not_pair_are_refused(tmp_path):
    _part(tmp_path, "a", [_row("pc_er", [0.8, 0.8, 0.8])])
    _part(tmp_path, "b", [_row("pc_er", [0.8, 0.8, 0.8])], seeds=(1002, 1003, 1004))
    with pytest.raises(SystemExit, match="test seed 1002 is in both a and b"):
        continual_seeds.main([str(tmp_path)])
    other = tmp_path / "other"
    _part(other, "a", [_row("pc_er", [0.8, 0.8, 0.8])])
    _part(other, "b", [_row("backprop_er", [0.8, 0.8, 0.8])], iterations=60)
    with pytest.raises(SystemExit, match="`iterations` is 60 against 2000"):
        continual_seeds.main([str(other)])
    third = tmp_path / "third"
    _part(third, "a", [_row("pc_er", [0.8, 0.8, 0.8])])
    _part(third, "b", [_row("pc_er", [0.8, 0.8])], seeds=(1003, 1004), lr=3e-4)
    with pytest.raises(SystemExit, match="pc_er selected .* the blocks of seeds are not one"):
        continual_seeds.main([str(third)])


def test_parts_may_search_other_learning_rates_for_other_methods(tmp_path):
    # A control tuned over its own learning-rate grid joins the part it controls; the
    # same method choosing a different rate in another block is still refused (above).
    _part(tmp_path, "uniform", [_row("pc_store_uniform_lean", [0.70, 0.72, 0.74], capacity=195)],
          lr=5e-4, pc_lrs=[5e-4, 1e-3, 2e-3])  # fmt: skip
    _part(tmp_path, "gate", [_row("pc_store_gate_example_lean", [0.71, 0.72, 0.76], capacity=195)],
          pc_lrs=[1e-3], gate_floors=[0.0, 0.5])  # fmt: skip
    continual_seeds.main([str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    (row,) = summary["comparisons"]
    assert (row["method"], row["vs"]) == ("pc_store_gate_example_lean", "pc_store_uniform_lean")
    assert row["diff"] == pytest.approx(0.01)
    other = tmp_path / "other"
    _part(other, "a", [_row("pc_er", [0.8, 0.8, 0.8])], pc_lrs=[1e-3])
    _part(other, "b", [_row("pc_er", [0.8, 0.8, 0.8])], iterations=60, pc_lrs=[5e-4])
    with pytest.raises(SystemExit, match="`iterations` is 60 against 2000"):
        continual_seeds.main([str(other)])
