"""`benchmarks/oneshot_report.py`: a second run of the same episodes joined after checking
the pairing, and paired differences across the two runs."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import oneshot_report  # noqa: E402


def _run(folder, rows):
    results = [
        {"method": m, "metric": "random_5way", "mean": sum(v) / len(v), "ci95": 0.0,
         "n": len(v), "values": v}
        for m, v in rows.items()
    ]  # fmt: skip
    payload = {"command": "pcastro oneshot", "device": "cpu", "seed": 0,
               "details": {"wall_s": 1.0}, "results": results}  # fmt: skip
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(payload))
    return folder


def test_a_second_run_joins_and_pairs_episode_by_episode(tmp_path):
    a = _run(tmp_path / "a", {"pc_sgd": [0.5, 0.6, 0.7], "proto_cos@bp": [0.6, 0.6, 0.8]})
    b = _run(tmp_path / "b", {"pc_astro_target": [0.6, 0.6, 0.9], "proto_cos@bp": [0.6, 0.6, 0.8]})
    text = oneshot_report.main(
        [str(a), "--with", str(b), "--pairs", "pc_astro_target-pc_sgd,pc_sgd-proto_cos@bp"]
    )
    assert "| pc_astro_target | 0.700 ± 0.000 |" in text
    # (0.1 + 0.0 + 0.2) / 3 over the same three episodes.
    assert "| pc_astro_target − pc_sgd | +0.100 ± " in text and "(n = 3)" in text
    assert "| pc_sgd − proto_cos@bp | -0.067 ± " in text


def test_runs_that_do_not_share_their_episodes_are_refused(tmp_path):
    a = _run(tmp_path / "a", {"pc_sgd": [0.5, 0.6], "proto_cos@bp": [0.6, 0.6]})
    b = _run(tmp_path / "b", {"pc_astro_target": [0.6, 0.6], "proto_cos@bp": [0.6, 0.7]})
    with pytest.raises(SystemExit, match="proto_cos@bp .* differs per episode"):
        oneshot_report.main([str(a), "--with", str(b)])
    c = _run(tmp_path / "c", {"pc_astro_target": [0.6, 0.6]})
    with pytest.raises(SystemExit, match="shares no method with the run"):
        oneshot_report.main([str(a), "--with", str(c)])
    with pytest.raises(SystemExit, match="no pc_x or pc_sgd for random_5way"):
        oneshot_report.main([str(a), "--pairs", "pc_x-pc_sgd"])
