"""`benchmarks/imprint_pretraining.py`: the sweep is read off seed 0's validation scores and
the chosen setting is compared per seed, refusing runs whose backprop rows do not pair."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import imprint_pretraining  # noqa: E402


def _write(folder, seed, *, steps, dt, pc_mean, val_pc, bp=None):
    rng = np.random.default_rng(seed)
    bp = rng.uniform(0.6, 0.7, 30) if bp is None else bp
    pc = np.clip(bp + pc_mean + 0.001 * rng.standard_normal(30), 0, 1)
    rows = [
        {"method": m, "metric": "ten_way_accuracy", "values": v.tolist()}
        for m, v in (("imprint@pc", pc), ("imprint@bp", bp), ("proto_cos@pc", pc - 0.04),
                     ("proto_cos@bp", bp - 0.04))
    ]  # fmt: skip
    sel = {
        "imprint@pc": {"scale": 0.5, "val_ten_way": val_pc, "at_edge": []},
        "imprint@bp": {"scale": 0.5, "val_ten_way": 0.65, "at_edge": []},
        "proto_cos@pc": {"novel_bias": 0.05, "val_ten_way": 0.6, "at_edge": []},
    }
    folder.mkdir(parents=True)
    payload = {
        "seed": seed,
        "command": f"pcastro oneshot --seed {seed}",
        "config": {"inference_steps": steps, "solver": "euler", "dt": dt, "pretrain_epochs": 10},
        "results": rows,
        "details": {"selected": sel},
    }
    (folder / "results.json").write_text(json.dumps(payload))
    return bp


def test_chosen_setting_is_compared_with_both_references(tmp_path):
    default, sweep = tmp_path / "default", tmp_path / "sweep"
    for s in (0, 1):
        bp = _write(default / f"s{s}", s, steps=20, dt=0.1, pc_mean=-0.05, val_pc=0.60)
        _write(sweep / f"small_s{s}", s, steps=3, dt=0.02, pc_mean=-0.002, val_pc=0.65, bp=bp)
    _write(sweep / "other_s0", 0, steps=50, dt=0.1, pc_mean=-0.05, val_pc=0.61)
    summary = imprint_pretraining.summarise(sweep, default, "small")
    assert [r["run"] for r in summary["sweep_seed0"]][0] == "small_s0"  # best validation first
    diffs = {c["comparison"]: c["diff"] for c in summary["comparisons"]}
    assert diffs["imprint@pc (chosen) − imprint@bp"] == pytest.approx(-0.002, abs=0.002)
    assert diffs["imprint@pc (chosen) − imprint@pc (default)"] == pytest.approx(0.048, abs=0.003)
    assert "3 euler steps (dt 0.02)" in imprint_pretraining.markdown(summary)


def test_unpaired_backprop_rows_are_refused(tmp_path):
    default, sweep = tmp_path / "default", tmp_path / "sweep"
    for s in (0, 1):
        bp = _write(default / f"s{s}", s, steps=20, dt=0.1, pc_mean=-0.05, val_pc=0.60)
        other = bp + 0.01  # another backprop body: the runs do not share their pretraining
        _write(sweep / f"small_s{s}", s, steps=3, dt=0.02, pc_mean=0.0, val_pc=0.65, bp=other)
    with pytest.raises(SystemExit, match="not paired"):
        imprint_pretraining.summarise(sweep, default, "small")
