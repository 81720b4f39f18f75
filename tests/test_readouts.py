"""Few-shot read-outs, PC-native one-shot learners, the two-part pixel nearest neighbour,
the grid sweep and paired differences."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pcastro as pc
from pcastro.baselines import pixel_nearest_neighbour
from pcastro.bench._compare import paired_differences
from pcastro.bench._learners import PCRule, make_model
from pcastro.bench._pixel_nn import PixelNNTwoPart
from pcastro.bench._readouts import (
    HeadFinetune,
    Imprint,
    NearestPrototype,
    hidden_features,
    pc_local_learners,
)
from pcastro.bench._records import result_row, sweep_grid, tune

RULE = PCRule(steps=2, solver=pc.Euler(dt=0.1))
LEARNERS = [
    NearestPrototype(label="proto_cos", metric="cosine"),
    NearestPrototype(label="proto_euc", metric="euclidean"),
    Imprint(label="imprint"),
    HeadFinetune(label="head_ft", lrs=(1e-2,), updates=(1, 2)),
    HeadFinetune(
        label="head_ft_replay", lrs=(1e-2,), updates=(1,), replay=True, per_class=2, batch=3
    ),
    *pc_local_learners(RULE, lrs=(0.1,), updates=(1, 2), hidden=16, classes=10, blocks=4).values(),
]


@pytest.fixture(scope="module")
def episode(digits_transfer_episode):
    return digits_transfer_episode


# The astrocyte variants without base classes run the same code as plain pc_sgd, which
# covers that case; they are checked with base classes only.
CASES = [
    pytest.param(learner, with_base, id=f"{learner.name}-{'base' if with_base else 'scratch'}")
    for learner in LEARNERS
    for with_base in (False, True)
    if with_base or not learner.name.startswith("pc_sgd_astro")
]


@pytest.mark.parametrize("learner, with_base", CASES)
def test_contract(learner, with_base, episode, getkey):
    sx, sy, qx, qy, base = episode
    if learner.name == "head_ft_replay" and not with_base:
        with pytest.raises(ValueError, match="transfer protocol only"):
            learner.start(make_model(getkey(), (64, 16, 10)), 0.01)
        return
    base = base if with_base else None
    net = make_model(getkey(), (sx.shape[1], 16, 10))
    grid = learner.grid()
    lr = jnp.float32(grid.get("lr", (0.0,))[0])
    state = learner.start(net, lr, base=base)
    hp = {name: values[0] for name, values in grid.items()}
    state = learner.learn(state, sx, sy, hp, key=getkey(), one_at_a_time=with_base)
    labels = learner.predict(state, qx)
    assert labels.shape == qy.shape and bool(jnp.all((labels >= 0) & (labels < 10)))

    def evaluate(s):
        return jnp.mean(learner.predict(s, qx) == qy)

    table = learner.sweep(
        net, sx, sy, lr, evaluate, key=getkey(), base=base, one_at_a_time=with_base
    )
    assert table.shape == tuple(len(v) for n, v in grid.items() if n != "lr")


def test_nearest_prototype_is_the_nearest_class_mean_of_the_features(episode, getkey):
    sx, sy, qx, _, base = episode
    net = make_model(getkey(), (sx.shape[1], 16, 10))
    h = lambda x: np.asarray(hidden_features(net, x))  # noqa: E731
    protos = {c: h(base[0][base[1] == c]).mean(0) for c in np.unique(base[1])}
    protos.update({int(c): h(sx[np.asarray(sy) == c]).mean(0) for c in np.unique(sy)})
    classes = sorted(protos)
    for metric in ("cosine", "euclidean"):
        learner = NearestPrototype(label="p", metric=metric)
        state = learner.learn(
            learner.start(net, 0.0, base=base), sx, sy, {"novel_bias": 0.0}, key=None
        )
        hq = h(qx)
        if metric == "cosine":
            unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
            scores = unit(hq) @ unit(np.stack([protos[c] for c in classes])).T
        else:
            scores = -((hq[:, None] - np.stack([protos[c] for c in classes])[None]) ** 2).sum(-1)
        expected = np.asarray(classes)[scores.argmax(1)]
        np.testing.assert_array_equal(np.asarray(learner.predict(state, qx)), expected)


def test_imprinting_sets_novel_rows_to_scaled_unit_features(episode, getkey):
    sx, sy, _, _, base = episode
    net = make_model(getkey(), (sx.shape[1], 16, 10))
    learner = Imprint(label="imprint")
    start = learner.start(net, 0.0, base=base)
    state = learner.learn(start, sx, sy, {"scale": 2.0}, key=None)
    w = np.asarray(net.nodes[-1].modules[0].weight)
    mean_norm = np.linalg.norm(w[:5], axis=1).mean()
    h = np.asarray(hidden_features(net, sx))
    for row, c in zip(h, np.asarray(sy)):
        np.testing.assert_allclose(
            state.weight[c], 2.0 * mean_norm * row / np.linalg.norm(row), rtol=1e-5
        )
    np.testing.assert_array_equal(state.weight[:5], w[:5])  # base rows untouched


def test_head_finetuning_changes_only_the_head(episode, getkey):
    sx, sy, qx, _, base = episode
    net = make_model(getkey(), (sx.shape[1], 16, 10))
    learner = HeadFinetune(label="h", lrs=(1e-2,), updates=(3,))
    state = learner.learn(
        learner.start(net, 0.01, base=base),
        sx,
        sy,
        {"updates": 3, "init": "trained"},
        key=getkey(),
        one_at_a_time=True,
    )
    assert eqx.tree_equal(state.net, net)
    assert not np.allclose(state.weight, net.nodes[-1].modules[0].weight)


def test_pc_local_columns_gate_keeps_quiet_output_rows(episode, getkey):
    # One presentation of a novel digit: with column astrocytes, output units whose local
    # error is zero-ish get (almost) no plasticity; plain PC moves every row.
    sx, sy, _, _, _ = episode
    net = make_model(getkey(), (sx.shape[1], 16, 10))
    learners = pc_local_learners(RULE, lrs=(0.1,), updates=(1,), hidden=16, classes=10, blocks=4)
    change = {}
    for name, learner in learners.items():
        state = learner.learn(learner.start(net, 0.1), sx[:1], sy[:1], {"updates": 1}, key=getkey())
        dw = np.abs(
            np.asarray(state.net.nodes[-1].modules[0].weight - net.nodes[-1].modules[0].weight)
        ).sum(1)
        change[name] = dw
    target = int(sy[0])
    gated = change["pc_sgd_astro_columns"] / np.maximum(change["pc_sgd"], 1e-12)
    assert gated[target] > gated[np.argsort(gated)[0]]
    assert np.all(change["pc_sgd"] > 0)


def test_two_part_pixel_nn_equals_the_reference(episode):
    sx, sy, qx, _, base = episode
    learner = PixelNNTwoPart()
    state = learner.learn(learner.start(None, 0.0, base=base), sx, sy, {}, key=None)
    reference = pixel_nearest_neighbour(
        np.concatenate([base[0], sx]), np.concatenate([base[1], sy]), qx
    )
    np.testing.assert_array_equal(learner.predict(state, qx), reference)
    # Inside a vmapped, compiled episode with constant evaluation images.
    run = jax.jit(
        jax.vmap(lambda x, y: learner.predict(learner.learn(state, x, y, {}, key=None), qx))
    )
    np.testing.assert_array_equal(run(sx[None], sy[None])[0], reference)


class _Grid:
    def __init__(self, grid):
        self._grid = grid

    def grid(self):
        return self._grid


@pytest.mark.parametrize("chunk", [None, 2])
def test_sweep_grid_axes_follow_the_grid(chunk):
    grid = {"a": (1, 2, 3), "lr": (10.0, 20.0)}
    episodes = (jnp.arange(5.0),)

    def sweep(episode, lr):  # static axis "a", then an output axis of 2
        return jnp.stack([jnp.stack([a + lr + episode[0], -episode[0]]) for a in grid["a"]])

    out = sweep_grid(_Grid(grid), sweep, episodes, chunk=chunk)
    assert out.shape == (3, 2, 5, 2)
    assert out[2, 1, 4, 0] == 3 + 20 + 4 and out[0, 0, 3, 1] == -3
    chosen, _ = tune(_Grid(grid), sweep, episodes, score=lambda o: o[..., 0])
    assert chosen == {"a": 3, "lr": 20.0}
    # A grid without a learning rate is swept once.
    out = sweep_grid(_Grid({"b": (0.0, 1.0)}), lambda e, lr: jnp.stack([e[0], e[0] + 1]), episodes)
    assert out.shape == (2, 5) and out[1, 2] == 3


def test_paired_differences_use_the_best_baseline_episode_by_episode():
    rows = [
        result_row("pc", [0.5, 0.7, 0.9], metric="accuracy"),
        result_row("proto", [0.4, 0.5, 0.9], metric="accuracy"),
        result_row("pixel_nn", [0.1, 0.1, 0.1], metric="accuracy"),
    ]
    (row,) = paired_differences(rows)
    assert row["vs"] == "proto" and row["n"] == 3
    assert row["diff"] == pytest.approx(0.1)
    assert rows[0]["values"] == [0.5, 0.7, 0.9]
