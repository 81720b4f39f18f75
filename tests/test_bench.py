"""The benchmark layer: validation selector, learner contract, generated CLI options."""

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pcastro as pc
from pcastro.bench import (
    LEARNERS,
    PC,
    AbstractLearner,
    Backprop,
    BackpropReplay,
    ClassMean,
    InterruptConfig,
    OmniglotConfig,
    OneShotConfig,
    PCAstro,
    PixelNN,
    ScratchConfig,
    TransferConfig,
    select_on_validation,
)
from pcastro.bench._conditions import CONDITIONS, make_conditions
from pcastro.bench._config import add_config_options, config_from_args, field_docs
from pcastro.bench._learners import PCRule, default_astrocytes, make_model
from pcastro.bench._records import failures
from pcastro.cli import main
from pcastro.data import load_dataset, sample_episode

# ---- select_on_validation ----------------------------------------------------------------


def test_select_on_validation_picks_the_argmax():
    grid = {"lr": (0.1, 0.2, 0.3), "updates": (1, 2)}
    scores = np.array([[0.1, 0.2], [0.3, 0.9], [0.5, 0.4]])
    chosen, score = select_on_validation(scores, grid)
    assert chosen == {"lr": 0.2, "updates": 2} and score == pytest.approx(0.9)


def test_select_on_validation_breaks_ties_by_grid_order():
    # Ties go to the first candidate in row-major order: the first axis varies slowest.
    scores = np.array([[0.1, 0.7], [0.7, 0.2]])
    chosen, _ = select_on_validation(scores, {"lr": (1e-3, 1e-2), "updates": (1, 2)})
    assert chosen == {"lr": 1e-3, "updates": 2}
    chosen, _ = select_on_validation(scores.T, {"updates": (1, 2), "lr": (1e-3, 1e-2)})
    assert chosen == {"updates": 1, "lr": 1e-2}
    # Deterministic: the same table always gives the same choice.
    flat = np.full((3, 4), 0.5)
    for _ in range(3):
        assert select_on_validation(flat, {"a": (1, 2, 3), "b": (4, 5, 6, 7)})[0] == {
            "a": 1,
            "b": 4,
        }


def test_select_on_validation_checks_the_table_shape():
    with pytest.raises(ValueError, match=r"`scores` has shape \(2,\) but the grid"):
        select_on_validation(np.zeros(2), {"lr": (1, 2, 3)})


# ---- the learner contract ------------------------------------------------------------------

RULE = PCRule(steps=2, solver=pc.Euler(dt=0.1))
ALL_LEARNERS = [
    PC(rule=RULE, lrs=(1e-2, 3e-2), updates=(1, 2)),
    PC(rule=RULE, lrs=(1e-2,), updates=(2,), astrocytes=None, ne=0.0),
    PCAstro(rule=RULE, lrs=(1e-2,), rounds=(1, 2)),
    Backprop(lrs=(1e-2, 3e-2), updates=(1, 3)),
    BackpropReplay(lrs=(1e-2,), updates=(1, 2), per_class=2, batch=3),
    PixelNN(),
    ClassMean(num_classes=10),
]


@pytest.fixture(scope="module")
def episode():
    ds = load_dataset("digits")
    ep = sample_episode(jax.random.key(0), ds.x_test, ds.y_test, ways=5, shots=1, queries=3)
    base = np.isin(ds.y_train, (5, 6, 7, 8, 9))
    # Original labels 0-4 for the support and queries; base images are digits 5-9.
    return (
        ep.support_x,
        ep.classes[ep.support_y],
        ep.query_x,
        ep.classes[ep.query_y],
        (ds.x_train[base][:40], ds.y_train[base][:40]),
    )


def test_registry_names_every_learner():
    assert set(LEARNERS) == {type(learner).name for learner in ALL_LEARNERS}
    for name, cls in LEARNERS.items():
        assert cls.name == name and issubclass(cls, AbstractLearner)


@pytest.mark.parametrize("learner", ALL_LEARNERS, ids=lambda learner: type(learner).__name__)
@pytest.mark.parametrize("one_at_a_time", [False, True])
def test_learner_contract(learner, one_at_a_time, episode, getkey):
    sx, sy, qx, qy, base = episode
    net = make_model(getkey(), (sx.shape[1], 16, 10))
    lr = jnp.float32(learner.grid().get("lr", (0.0,))[0])
    hp = {name: values[0] for name, values in learner.grid().items()}
    state = learner.start(net, lr, base=base)
    state = learner.learn(state, sx, sy, hp, key=getkey(), one_at_a_time=one_at_a_time)
    labels = learner.predict(state, qx)
    assert labels.shape == qy.shape and jnp.issubdtype(labels.dtype, jnp.integer)
    assert bool(jnp.all((labels >= 0) & (labels < 10)))
    acc = float(jnp.mean(labels == qy))
    assert 0.0 <= acc <= 1.0

    # The sweep scores every static grid setting at one learning rate, in grid order.
    def evaluate(s):
        return jnp.mean(learner.predict(s, qx) == qy)

    table = learner.sweep(net, sx, sy, lr, evaluate, key=getkey(), base=base)
    static = [len(v) for name, v in learner.grid().items() if name != "lr"]
    assert table.shape == tuple(static)
    assert bool(jnp.all((table >= 0) & (table <= 1)))


def test_learner_sweep_equals_separate_runs(episode, getkey):
    # One learning curve scores every update count: the same as separate runs.
    sx, sy, qx, qy, _ = episode
    learner = PC(rule=RULE, lrs=(3e-2,), updates=(1, 3))
    net, key, lr = make_model(getkey(), (sx.shape[1], 16, 10)), getkey(), jnp.float32(3e-2)

    def evaluate(state):
        return jax.vmap(state.net)(qx)

    table = learner.sweep(net, sx, sy, lr, evaluate, key=key)
    for i, updates in enumerate(learner.updates):
        state = learner.learn(learner.start(net, lr), sx, sy, {"updates": updates}, key=key)
        np.testing.assert_allclose(table[i], evaluate(state), rtol=1e-5, atol=1e-6)


def test_backprop_replay_needs_base_classes(getkey):
    learner = BackpropReplay(lrs=(1e-2,), updates=(1,))
    with pytest.raises(ValueError, match="transfer protocol only"):
        learner.start(make_model(getkey(), (4, 3, 2)), 0.01)


def test_every_condition_is_built():
    pc = PC(rule=RULE, lrs=(1e-2,), updates=(2,))
    conditions = make_conditions(
        pc, Backprop(lrs=(1e-2,), updates=(2,)), ne=1.0, fresh=False, tol=0.1
    )
    assert tuple(conditions) == CONDITIONS


# ---- configs and the generated CLI -----------------------------------------------------------


@pytest.mark.parametrize("cls", [ScratchConfig, TransferConfig, OmniglotConfig, InterruptConfig])
def test_cli_has_an_option_per_documented_field(cls):
    parser = argparse.ArgumentParser()
    add_config_options(parser, cls)
    docs = field_docs(cls)
    options = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(cls):
        assert docs[f.name], f"field {f.name} has no docstring"
        action = options[f.name]
        assert action.option_strings == ["--" + f.name.replace("_", "-")]
        assert docs[f.name].replace("%", "%%") in action.help  # argparse %-formats help
        assert action.default == f.default
    # Defaults round-trip to the default config.
    assert config_from_args(cls, parser.parse_args([])) == cls()


def test_oneshot_options_pick_the_protocols_config_and_refuse_foreign_ones():
    from pcastro.bench._config import add_oneshot_options, oneshot_config_from_args

    parser = argparse.ArgumentParser()
    add_oneshot_options(parser)

    def config(*argv):
        return oneshot_config_from_args(parser.parse_args(list(argv)))

    assert config() == ScratchConfig()
    assert config("--protocol", "transfer", "--sgd-lrs", "0.5") == TransferConfig(sgd_lrs=(0.5,))
    assert config("--dataset", "omniglot", "--body", "conv") == OmniglotConfig(body="conv")
    with pytest.raises(ValueError, match="`--ways` is a setting of the scratch protocol, not of "):
        config("--protocol", "transfer", "--ways", "5")
    with pytest.raises(ValueError, match="`--frontier-episodes` is a setting of the transfer"):
        config("--frontier-episodes", "3")
    with pytest.raises(TypeError, match="configure a run with `ScratchConfig`, `TransferConfig`"):
        OneShotConfig()
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["ways"].startswith("[scratch] ") and helps["body"].startswith("[omniglot] ")
    assert helps["astro_rounds"].startswith("[scratch, transfer] ")
    assert not helps["sgd_lrs"].startswith("[")  # every protocol has it


def test_cli_parses_comma_lists():
    parser = argparse.ArgumentParser()
    add_config_options(parser, ScratchConfig)
    args = parser.parse_args(
        ["--lrs", "0.1,0.2", "--astro-rounds", "1,5", "--methods", "pc, backprop", "--hidden", "7"]
    )
    cfg = config_from_args(ScratchConfig, args)
    assert cfg.lrs == (0.1, 0.2) and cfg.astro_rounds == (1, 5)
    assert cfg.methods == ("pc", "backprop") and cfg.hidden == 7
    with pytest.raises(SystemExit):
        parser.parse_args(["--lrs", "0.1,fast"])


@pytest.mark.parametrize(
    "command, known, typo, close",
    [
        ("oneshot", "pc", "pc_sdg", "pc_sgd"),
        ("interrupt", "pc_replay", "pc_store_nee", "pc_store_ne"),
        ("continual", "pc_er", "backprop_err", "backprop_er"),
    ],
)
def test_an_unknown_method_is_refused_with_the_closest_names(command, known, typo, close, capsys):
    code = main([command, "--methods", f"{known},{typo},nope", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"Unknown methods ['{typo}', 'nope']" in err
    assert f"{typo}: did you mean {close}" in err and "nope: no close name" in err
    assert f"pcastro {command} --methods list" in err


@pytest.mark.parametrize("astrocytes", [None, default_astrocytes()], ids=["plain", "gated"])
def test_a_learners_failed_updates_are_counted_not_dropped(getkey, astrocytes):
    ds = load_dataset("digits")
    x, y = ds.x_train[:8], ds.y_train[:8]
    net = make_model(getkey(), (64, 16, 10))
    # A step far past the stability limit: every solve oscillates or diverges.
    wild = PC(rule=PCRule(steps=3, solver=pc.Euler(dt=5.0)), lrs=(1e-2,), updates=(2,),
              astrocytes=astrocytes)  # fmt: skip
    safe = PC(rule=PCRule(steps=3), lrs=(1e-2,), updates=(2,), astrocytes=astrocytes)
    for learner, failed in ((wild, 2 * len(x)), (safe, 0)):
        state = learner.start(net, 1e-2)
        state = learner.learn(state, x, y, {"lr": 1e-2, "updates": 2}, key=getkey(),
                              one_at_a_time=True)  # fmt: skip
        assert int(failures(state)) == failed


def test_the_progress_bar_says_when_it_compiles(capsys):
    # Before: the bar froze for minutes while a method compiled, with a misleading ETA.
    from pcastro.bench._records import progress_bar, timed

    with progress_bar(1, enabled=True) as bar:
        bar.set_description("demo")
        timed(jax.vmap(lambda v: v * 2), jnp.ones((4, 3)), in_axes=(0,))
    shown = capsys.readouterr().err
    assert "demo: 0/1 done [00:00, compiling]" in shown
    assert "running (compiled in" in shown
    assert "<" not in shown and "it/s" not in shown  # no remaining-time estimate, no rate


def test_a_snapshot_of_a_failed_solve_is_refused(getkey):
    # A diverged solve must not become a memory that consolidation replays.
    import types

    from pcastro.bench._learners import PCRule, Trained
    from pcastro.bench._schedules import Consolidate

    net = pc.mlp([4, 8, 3], key=getkey())
    x = 100.0 * jax.random.normal(getkey(), (2, 4))
    y = jnp.array([0, 2])
    learner = types.SimpleNamespace(rule=PCRule(steps=20, solver=pc.Euler(dt=50.0)))
    state = Trained(net, 0.1, None, None)
    resume = Consolidate(fresh=False, tol=0.0, ne=None)
    with pytest.raises(Exception, match="Inference for a snapshot did not succeed"):
        resume.remember(None, learner, state, x, y, step=1, capacity=2)
    # A solve that succeeds is kept.
    fine = types.SimpleNamespace(rule=PCRule(steps=5, solver=pc.AdaptiveEuler()))
    store = resume.remember(None, fine, state, x / 100.0, y, step=1, capacity=2)
    assert int(store.occupied.sum()) == 2


def test_a_backprop_update_that_goes_non_finite_is_counted_and_can_raise(getkey):
    import equinox as eqx
    import optax

    from pcastro.bench._learners import BackpropRule

    net = make_model(getkey(), (64, 16, 10))
    x = jax.random.uniform(getkey(), (8, 64))
    y = jax.nn.one_hot(jnp.arange(8) % 10, 10)
    optimizer = optax.sgd(1e-2)
    opt_state = optimizer.init(eqx.filter(net, eqx.is_inexact_array))
    update = BackpropRule().update
    _, _, ok = update(net, opt_state, x, y, optimizer=optimizer)
    assert int(ok) == int(pc.RESULTS.successful)
    # A learning rate of NaN (the data are checked before this, the optimiser is not).
    wild = optax.sgd(float("nan"))
    _, _, status = update(net, opt_state, x, y, optimizer=wild)
    assert int(status) == int(pc.RESULTS.nonfinite_update)
    with pytest.raises(Exception, match="non-finite parameters"):
        step = eqx.filter_jit(lambda n: update(n, opt_state, x, y, optimizer=wild, throw=True))
        jax.block_until_ready(eqx.filter(step(net)[0], eqx.is_inexact_array))
