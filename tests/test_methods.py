"""The registry of the benchmarks' methods: every name builds, the protocols' name tuples
agree with it, former names still read."""

import importlib
import json
from pathlib import Path

import pytest

from pcastro.bench import InterruptConfig, OmniglotConfig, TransferConfig
from pcastro.bench._conditions import CONDITIONS, make_conditions
from pcastro.bench._config import ContinualConfig, oneshot_config
from pcastro.bench._continual import METHODS, STORE_VARIANTS, make_learner
from pcastro.bench._continual_methods import AbstractContinualLearner
from pcastro.bench._learners import LEARNERS, PC, Backprop, PCRule
from pcastro.bench._methods import (
    CONTINUAL,
    FORMER_NAMES,
    INTERRUPT,
    MOVED,
    ONESHOT,
    REGISTRY,
    check_methods,
    current_names,
    method_names,
)
from pcastro.bench._oneshot import BASELINES, PROTOCOLS, make_learners
from pcastro.bench._readouts import (
    PC_LOCAL,
    READOUTS,
    TRANSFER_ONLY,
    pc_local_learners,
)

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _builder(reference: str):
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(f"pcastro.bench.{module}"), name)


@pytest.mark.parametrize("command", REGISTRY)
def test_every_entry_names_its_builder_and_where_it_runs(command):
    for name, method in REGISTRY[command].items():
        assert callable(_builder(method.builder)), name
        assert method.description and "\n" not in method.description, name
        assert set(method.default) <= set(method.protocols), name
        assert method.rule in ("pc", "backprop", None), name


def _oneshot_cases():
    return [(n, p) for n, m in ONESHOT.items() for p in m.protocols if p != "omniglot"]


@pytest.mark.parametrize("name, protocol", _oneshot_cases())
def test_every_oneshot_name_builds_its_learner(name, protocol):
    cfg = oneshot_config(protocol, methods=(name,), hidden=16, hidden_columns=4)
    built = [learner.name for learner in make_learners(cfg)]
    if name in READOUTS and protocol == "transfer":  # one per pretrained network
        assert {f"{name}@pc", f"{name}@bp"} <= set(built)
    else:
        assert name in built
    assert set(BASELINES) <= set(built)  # the baselines run in every run


def test_every_omniglot_name_builds_its_learner():
    from pcastro.bench._omniglot import omniglot_learners

    for name in method_names("oneshot", protocol="omniglot"):
        cfg = OmniglotConfig(methods=(name,), hidden=16)
        built = {learner.name.split("@")[0] for learner in omniglot_learners(cfg, 64)}
        assert name in built
    with pytest.raises(ValueError, match=r"\['imprint'\] do not run on Omniglot"):
        OmniglotConfig(methods=("imprint",))


def test_every_interrupt_condition_is_built():
    rule = PCRule(steps=2)
    pc = PC(rule=rule, lrs=(1e-2,), updates=(2,))
    built = make_conditions(pc, Backprop(lrs=(1e-2,), updates=(2,)), ne=1.0, fresh=False, tol=0.1)
    assert tuple(built) == tuple(INTERRUPT) == CONDITIONS


@pytest.mark.parametrize("name", list(CONTINUAL))
def test_every_continual_name_builds_its_learner(name):
    cfg = ContinualConfig(methods=(name,))
    learner = make_learner(name, lr=1e-3, budget=10, cfg=cfg, sizes=(64, 8, 10))
    assert isinstance(learner, AbstractContinualLearner)
    assert isinstance(learner, _builder(CONTINUAL[name].builder))


def test_the_name_tuples_are_the_registrys():
    local = pc_local_learners(
        PCRule(steps=1), lrs=(0.1,), updates=(1,), hidden=8, classes=10, blocks=4
    )
    assert PC_LOCAL == tuple(local)
    assert READOUTS == ("proto_cos", "proto_euc", "imprint", "head_ft", "head_ft_replay")
    assert set(TRANSFER_ONLY) == {"backprop_replay", "head_ft_replay"}
    # A learner that needs base classes runs in the transfer protocol only.
    for name, cls in LEARNERS.items():
        assert (ONESHOT[name].protocols == ("transfer",)) == cls.needs_base, name
    assert PROTOCOLS["transfer"][1] == (
        "pc", "pc_astro", *PC_LOCAL, "backprop", "backprop_replay", *READOUTS,
        "pixel_nn", "class_mean",
    )  # fmt: skip
    assert set(PROTOCOLS["scratch"][1]) == {
        "pc", "pc_astro", "backprop", "proto_cos", "proto_euc", "imprint", "head_ft",
        "pixel_nn", "class_mean",
    }  # fmt: skip
    assert METHODS == tuple(CONTINUAL)
    assert set(method_names("continual", group="store")) == set(STORE_VARIANTS)


def test_former_names_are_accepted_and_read_as_the_current_ones():
    cfg = ContinualConfig(methods=("bp_finetune", "pc_er", "bp_per"))
    assert cfg.methods == ("backprop_finetune", "pc_er", "backprop_per")
    assert InterruptConfig(methods=("backprop_replay",)).methods == ("backprop_rehearse",)
    # In oneshot, backprop_replay is a method of its own (a buffer of base images).
    assert TransferConfig(methods=("backprop_replay",)).methods == ("backprop_replay",)
    for command, renames in FORMER_NAMES.items():
        assert set(renames.values()) <= set(REGISTRY[command])
        assert not set(renames) & set(REGISTRY[command])
    record = {
        "results": [{"method": "bp_er", "budget": 200}, {"method": "pc_er", "budget": 200}],
        "paired": [{"method": "pc_store_both", "control": "bp_er"}],
        "details": {"selected": {"bp_er": {"lr": 0.1}}},
        "config": {"methods": ["bp_er", "pc_er"]},
    }
    renamed = current_names(record, "continual")
    assert [r["method"] for r in renamed["results"]] == ["backprop_er", "pc_er"]
    assert renamed["paired"][0]["control"] == "backprop_er"
    assert list(renamed["details"]["selected"]) == ["backprop_er"]
    assert renamed["config"]["methods"] == ["backprop_er", "pc_er"]
    assert record["results"][0]["method"] == "bp_er"  # the record itself is left alone


def _recorded():
    for path in sorted(RESULTS.rglob("results.json")):
        payload = json.loads(path.read_text())
        rows = payload.get("results") if isinstance(payload, dict) else None
        if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "method" in rows[0]:
            kind = "continual" if "budget" in rows[0] else "oneshot"
            yield path, "interrupt" if "phase" in rows[0] else kind, payload


def test_every_recorded_method_reads_as_a_registered_name():
    seen = 0
    for path, command, payload in _recorded():
        for row in current_names(payload, command)["results"]:
            name = row["method"].split("@")[0]
            # One learner per coverage placement (benchmarks/coverage.py, either sense).
            if name.startswith(("pc_sgd_cover_", "pc_target_cover_")):
                name = "pc_sgd_astro_coverage"
            # A method that moved to a script is named there (see test_oneshot_scripts.py).
            known = REGISTRY[command].keys() | MOVED.get(command, {}).keys()
            assert name in known, (path, row["method"])
            seen += 1
    assert seen > 0


def test_a_moved_method_names_the_script_that_runs_it():
    moved = r"pc_sgd_fresh is no longer a method.*oneshot_diagnostics"
    with pytest.raises(ValueError, match=moved):
        check_methods(("pc_sgd", "pc_sgd_fresh"), "oneshot")
    with pytest.raises(ValueError, match=r"pc_sgd_astro_coverage .*benchmarks/coverage.py"):
        TransferConfig(methods=("pc_sgd_astro_coverage",))


def test_check_methods_suggests_close_names():
    with pytest.raises(ValueError, match=r"pc_astro_targt: did you mean pc_astro_target"):
        check_methods(("pc_astro_targt",), "oneshot")
    with pytest.raises(ValueError, match=r"bp_err: did you mean .*bp_er"):
        check_methods(("bp_err",), "continual")
