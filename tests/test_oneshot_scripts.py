"""The one-shot study's own learners, run from `benchmarks/` scripts beside the registered
methods of `pcastro oneshot`: the diagnostics of `oneshot_diagnostics.py` and the coverage
sweep of `coverage.py` (moved out of the package, learners and numbers unchanged)."""

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pcastro as pc
from pcastro.bench import LearnerParts, TransferConfig
from pcastro.bench._figures import METHOD_COLOURS, method_colour
from pcastro.bench._learners import PCRule, make_model
from pcastro.bench._oneshot import make_learners
from pcastro.bench._readouts import coverage_of, pc_local_learners

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import coverage  # noqa: E402
import oneshot_diagnostics as od  # noqa: E402

RULE = PCRule(steps=2, solver=pc.Euler(dt=0.1))


@pytest.fixture(scope="module")
def episode(digits_transfer_episode):
    return digits_transfer_episode


def test_every_diagnostic_has_its_own_colour():
    assert set(od.VARIANTS) <= set(METHOD_COLOURS)
    colours = [method_colour(n) for n in METHOD_COLOURS]
    assert len(set(colours)) == len(colours)


def test_the_script_refuses_unknown_diagnostics_and_lists_them(capsys):
    with pytest.raises(SystemExit, match="unknown diagnostics \\['pc_sgd_fresch'\\]"):
        od.checked_names("pc_sgd_fresch")
    assert od.main(["--diagnostics", "list"]) == 0
    assert "pc_sgd_target_fresh" in capsys.readouterr().out


def test_coverage_masks_place_astrocytes_as_named():
    masks = coverage.coverage_masks(blocks=4, classes=10, fractions=(0.25, 0.5), draws=3, seed=1)
    assert masks["hidden"] == (True,) * 4 + (False,) * 10
    assert masks["output"] == (False,) * 4 + (True,) * 10
    for f in (0.25, 0.5):
        draws = [masks[f"random{round(100 * f)}-{d}"] for d in range(3)]
        assert all(sum(m) == round(f * 14) and len(m) == 14 for m in draws)
        assert len(set(draws)) == 3  # distinct subsets
    again = coverage.coverage_masks(blocks=4, classes=10, fractions=(0.25, 0.5), draws=3, seed=1)
    assert again == masks


@pytest.mark.parametrize("sense", ["squared", "target"])
def test_coverage_endpoints_equal_plain_and_column_learners(sense, episode, getkey):
    # No region covered must learn exactly as pc_sgd (gate 1 everywhere), every region
    # covered exactly as the fully covered method (pc_sgd_astro_columns, or
    # pc_astro_target when the astrocytes sense the target-directed excess).
    full_name, prefix = coverage.SENSES[sense]
    sx, sy, _, _, base = episode
    net = make_model(getkey(), (sx.shape[1], 16, 10))
    shape = dict(hidden=16, classes=10, blocks=4)
    local = pc_local_learners(RULE, lrs=(0.1,), updates=(2,), **shape)
    cfg = TransferConfig(sgd_lrs=(0.1,), hidden_columns=4)
    parts = LearnerParts(cfg, RULE, (2,), hidden=16, classes=10)
    (sweep,) = coverage.coverage_learners(parts, fractions=(0.5,), draws=1, sense=sense).values()
    cover = {learner.name: learner for learner in sweep}
    none = eqx.tree_at(
        lambda lrn: lrn.astrocytes.covered, cover[f"{prefix}hidden"], jnp.zeros(14, bool)
    )
    full = eqx.tree_at(
        lambda lrn: lrn.astrocytes.covered, cover[f"{prefix}hidden"], jnp.ones(14, bool)
    )
    assert coverage_of(cover[f"{prefix}output"]) == [False] * 4 + [True] * 10
    assert coverage_of(local[full_name]) == [True] * 14
    assert coverage_of(local["pc_sgd"]) is None

    def learned(learner):
        state = learner.start(net, jnp.float32(0.1), base=base)
        state = learner.learn(state, sx, sy, {"updates": 2}, key=getkey(), one_at_a_time=True)
        return jax.tree_util.tree_leaves(eqx.filter(state.net, eqx.is_inexact_array))

    for a, b in zip(learned(none), learned(local["pc_sgd"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(learned(full), learned(local[full_name]), strict=True):
        np.testing.assert_array_equal(a, b)
    # A partial placement lies strictly between: it differs from both endpoints.
    partial = learned(cover[f"{prefix}output"])
    assert not np.allclose(partial[-2], learned(local["pc_sgd"])[-2])
    assert not np.allclose(partial[-2], learned(local[full_name])[-2])


def test_the_coverage_sweep_runs_as_the_script_own_learners():
    default = [lrn.name for lrn in make_learners(TransferConfig())]
    assert not any(name.startswith("pc_sgd_cover_") for name in default)
    cfg = TransferConfig(methods=("pc_sgd",))

    def extra(parts):
        return coverage.coverage_learners(parts, fractions=(0.5,), draws=2)

    names = [lrn.name for lrn in make_learners(cfg, extra=extra)]
    # the named method and the baselines, then the script's learners
    assert sorted(names[:3]) == ["class_mean", "pc_sgd", "pixel_nn"]
    assert names[3:] == [
        "pc_sgd_cover_hidden",
        "pc_sgd_cover_output",
        "pc_sgd_cover_random50-0",
        "pc_sgd_cover_random50-1",
    ]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        coverage.coverage_masks(blocks=4, classes=10, fractions=(1.0,), draws=1, seed=0)
    plain = next(lrn for lrn in make_learners(cfg) if lrn.name == "pc_sgd")
    with pytest.raises(ValueError, match=r"reuse registered names: \['pc_sgd'\]"):
        make_learners(cfg, extra=lambda parts: {"again": [plain]})


def test_diagnostic_learners_start_the_novel_rows_like_imprinting(episode, getkey):
    sx, sy, _, _, base = episode
    net = make_model(getkey(), (sx.shape[1], 16, 10))
    fresh = od.fresh_novel_rows(net, base[1])
    before, after = net.nodes[-1].modules[0], fresh.nodes[-1].modules[0]
    np.testing.assert_array_equal(after.weight[:5], before.weight[:5])  # base rows kept
    np.testing.assert_array_equal(after.bias[:5], before.bias[:5])
    np.testing.assert_array_equal(after.weight[5:], 0.0)
    np.testing.assert_allclose(after.bias[5:], np.mean(before.bias[:5]), rtol=1e-6)
    np.testing.assert_array_equal(fresh.nodes[0].modules[0].weight, net.nodes[0].modules[0].weight)

    cfg = TransferConfig(sgd_lrs=(0.1,), hidden_columns=4)
    parts = LearnerParts(cfg, RULE, (1,), hidden=16, classes=10)
    built = od.diagnostic_learners(tuple(od.VARIANTS), parts)
    learners = {name: group[0] for name, group in built.items()}
    # Every diagnostic is built, and runs beside the registered methods of a run.
    assert list(learners) == list(od.VARIANTS)
    names = [lrn.name for lrn in make_learners(cfg, extra=lambda p: built)]
    assert names[-len(od.VARIANTS) :] == list(od.VARIANTS)
    x, y = sx[:1], sy[:1]  # one presentation of a novel digit

    def learn(name):
        learner = learners[name]
        state = learner.start(net, jnp.float32(0.1), base=base)
        return state, learner.learn(state, x, y, {"updates": 1}, key=getkey()).net

    state, learned = learn("pc_sgd_fresh")
    np.testing.assert_array_equal(state.net.nodes[-1].modules[0].weight[5:], 0.0)
    # The novel row becomes lr * e * h, along the inferred hidden state (the error at a
    # zero row with the label clamped is positive).
    row = np.asarray(learned.nodes[-1].modules[0].weight[int(y[0])])
    h = np.asarray(RULE.relax(state.net, x, y)[0].x[1][0])  # the output layer reads x_1 itself
    assert row @ h / (np.linalg.norm(row) * np.linalg.norm(h)) > 0.999

    def changed(a, b):
        return [not np.array_equal(u, v) for u, v in zip(a, b, strict=True)]

    hidden = (lambda n: n.nodes[0].modules[0].weight, lambda n: n.nodes[0].modules[0].bias)
    for name in ("pc_sgd_head", "pc_sgd_novel", "pc_sgd_target_fresh"):
        start, learned = learn(name)
        assert not any(changed([f(net) for f in hidden], [f(learned) for f in hidden]))
        before, after = start.net.nodes[-1].modules[0], learned.nodes[-1].modules[0]
        rows = changed(before.weight, after.weight)
        assert rows[int(y[0])]
        assert any(rows[:5]) == (name == "pc_sgd_head")  # base rows learn only in `head`
        if name == "pc_sgd_target_fresh":
            assert sum(rows) == 1  # no other row moves
        else:
            assert sum(rows[5:]) > 1  # the other novel rows move too
        assert changed(before.bias, after.bias) == rows
    with pytest.raises(ValueError, match="transfer protocol only"):
        learners["pc_sgd_novel"].start(net, jnp.float32(0.1))


@pytest.mark.slow
def test_the_diagnostics_script_runs_and_records_beside_the_named_methods(tmp_path):
    import json

    out = tmp_path / "run"
    argv = [
        "--diagnostics", "pc_sgd_target_fresh", "--dataset", "digits", "--protocol",
        "transfer", "--episodes", "2", "--val-episodes", "2", "--frontier-episodes", "0",
        "--pretrain-epochs", "1", "--sgd-lrs", "0.1", "--updates-per-example", "1",
        "--methods", "pc_sgd", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    assert od.main(argv) == 0
    record = json.loads((out / "results.json").read_text())
    methods = [r["method"] for r in record["results"]]
    assert "pc_sgd" in methods and "pc_sgd_target_fresh" in methods
    assert "pc_sgd_target_fresh" in record["details"]["selected"]


def test_own_learners_run_in_oneshot_only(capsys):
    from pcastro.cli import main

    assert main(["continual", "--methods", "pc_er"], extra=lambda parts: {}) == 2
    assert "own learners run in `oneshot` only" in capsys.readouterr().err


def test_a_sweep_reads_its_placements_by_what_its_astrocytes_sensed():
    masks = {"pc_astro_target": [True] * 14, "pc_target_cover_output": [False] * 4 + [True] * 10}
    payload = {"config": {"hidden_columns": 4}, "coverage_sweep": {"sense": "target"},
               "details": {"coverage": masks}}  # fmt: skip
    rows = [(r["placement"], r["hidden"], r["output"]) for r in coverage.placements(payload)]
    assert rows == [("none", 0, 0), ("all", 4, 10), ("output", 0, 10)]
    # Sweeps recorded before `--sense` sensed the squared error.
    del payload["coverage_sweep"]
    assert coverage.sense_of(payload) == ("pc_sgd_astro_columns", "pc_sgd_cover_")
