"""The transfer protocol: pretrain on base digits 0-4, then learn each novel digit 5-9 from
one example, presented one at a time.

Scores: accuracy on the novel queries, retention of the base test digits, and their mean
(the ten-way accuracy, on which hyperparameters are tuned). Validation uses a fifth of
the base training images and novel episodes from the training split.
"""

import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..data import base_novel_split, sample_episodes
from ._config import hidden_units
from ._learners import AbstractLearner, accuracy, make_model, pretrain
from ._records import failures, grid_edges, result_row, run_test_episodes, sweep_grid, tune
from ._report import original_labels

BASE = (0, 1, 2, 3, 4)
NOVEL = (5, 6, 7, 8, 9)
METRICS = ("novel_accuracy", "base_retention", "ten_way_accuracy")


def run_transfer(cfg, ds, learners: list[AbstractLearner], bar, *, mesh) -> tuple[list[dict], dict]:
    """Pretrain, tune and test every learner, episodes split over the devices of `mesh`;
    returns `(results, details)`."""
    k_val, k_test, k_init, _ = jax.random.split(jax.random.key(cfg.seed), 4)
    data = _data(cfg, ds, k_val, k_test, k_init)
    features = ds.x_train.shape[1]
    net0 = make_model(k_init, (features, hidden_units(cfg, features), 10))
    bar.set_description("pretraining on base digits 0-4")
    t0 = time.perf_counter()
    # One pretrained network per update rule, shared by the learners with that rule.
    pretrained = {}
    for rule in dict.fromkeys(learner.rule for learner in learners if learner.rule):
        pretrained[rule] = pretrain(
            rule, net0, *data["fit"], epochs=cfg.pretrain_epochs, seed=cfg.seed
        )
    pretrain_s = time.perf_counter() - t0
    bar.update(1)

    results, selected, timing, frontiers = [], {}, {}, {}
    for learner in learners:
        net = pretrained.get(learner.rule, net0)
        out, timing[learner.name], chosen, front = _evaluate(
            cfg, learner, net, data, bar, mesh=mesh
        )
        if chosen is not None:
            selected[learner.name] = chosen
        if front is not None:
            frontiers[learner.name] = front
        results += [result_row(learner.name, out[:, j], metric=m) for j, m in enumerate(METRICS)]
        bar.update(1)
    details = {"selected": selected, "timing": timing, "pretrain_s": pretrain_s}
    if frontiers:
        details["frontier"] = frontiers
    return results, details


def _data(cfg, ds, k_val, k_test, k_init) -> dict[str, Any]:
    """The base images to pretrain on (`fit`), to score retention on in validation
    (`base_val`, a fifth of the base training images) and test (`base_test`), and the
    validation and test episodes of the novel digits, each with its learners' keys."""
    base_train, _ = base_novel_split(ds.y_train, base=BASE, novel=NOVEL)
    base_test, _ = base_novel_split(ds.y_test, base=BASE, novel=NOVEL)
    xb, yb = ds.x_train[base_train], ds.y_train[base_train]
    perm = np.random.default_rng(cfg.seed).permutation(len(xb))
    n_val = len(xb) // 5
    fit = (xb[perm[n_val:]], yb[perm[n_val:]])
    base_val = (jnp.asarray(xb[perm[:n_val]]), jnp.asarray(yb[perm[:n_val]]))
    base_test = (jnp.asarray(ds.x_test[base_test]), jnp.asarray(ds.y_test[base_test]))
    common: dict[str, Any] = dict(
        ways=len(NOVEL), shots=cfg.shots, queries=cfg.queries, classes=NOVEL
    )
    val = sample_episodes(k_val, ds.x_train, ds.y_train, num=cfg.val_episodes, **common)
    test = sample_episodes(k_test, ds.x_test, ds.y_test, num=cfg.episodes, **common)
    # Episode labels are 0..4 in the order of `classes`; learn the original digits.
    val_set = (jax.random.split(jax.random.fold_in(k_init, 3), cfg.val_episodes),)
    val_set += original_labels(val)
    test_set = (jax.random.split(jax.random.fold_in(k_init, 4), cfg.episodes),)
    test_set += original_labels(test)
    return dict(fit=fit, base_val=base_val, base_test=base_test, val=val_set, test=test_set)


def _evaluate(cfg, learner, net, data, bar, *, mesh):
    """Tune `learner` on the validation episodes (if it has a grid), then run the test
    episodes: `(scores per episode, timing, selection or None, frontier or None)`."""
    fit, test_set = data["fit"], data["test"]

    def scores(state, qx, qy, base):
        novel = accuracy(learner, state, qx, qy)
        old = accuracy(learner, state, *base)
        return jnp.stack([novel, old, 0.5 * (novel + old)])

    def sweep_on(base):
        def sweep(episode, lr):
            key, sx, sy, qx, qy = episode
            net_, base_ = _unfoldable(net, base)
            return learner.sweep(
                net_,
                sx,
                sy,
                lr,
                lambda state: scores(state, qx, qy, base_),
                key=key,
                base=fit,
                one_at_a_time=True,
            )

        return sweep

    hp, chosen, front = {}, None, None
    if learner.grid():
        bar.set_description(f"{learner.name}: tuning on validation episodes")
        hp, val = tune(
            learner, sweep_on(data["base_val"]), data["val"], score=lambda out: out[..., 2],
            mesh=mesh,
        )  # fmt: skip
        chosen = {**hp, "val_ten_way": val, "at_edge": grid_edges(hp, learner.grid())}
        if cfg.frontier_episodes:
            bar.set_description(f"{learner.name}: every grid point on test episodes")
            first = jax.tree_util.tree_map(lambda a: a[: cfg.frontier_episodes], test_set)
            front = frontier(learner, sweep_on(data["base_test"]), first, hp, mesh=mesh)
        bar.update(1)

    def test_episode(episode, lr):
        key, sx, sy, qx, qy = episode
        net_, base_ = _unfoldable(net, data["base_test"])
        state = learner.start(net_, lr, base=fit)
        state = learner.learn(state, sx, sy, {**hp, "lr": lr}, key=key, one_at_a_time=True)
        return scores(state, qx, qy, base_), failures(state)

    bar.set_description(f"{learner.name}: test episodes")
    out, timing = run_test_episodes(learner, test_episode, test_set, hp, mesh=mesh)
    return out, timing, chosen, front


def _unfoldable(*values):
    """The pretrained weights and the base images scored for retention, closed-over
    constants of a jitted episode function, behind an optimisation barrier: without it
    XLA constant-folds products of the two (the features of 6,000 base images) at compile
    time, about 40 s per product on full MNIST. Values are unchanged. (The replay images
    `fit` stay NumPy: learners index them with concrete masks.)"""
    arrays, static = eqx.partition(values, eqx.is_array)
    return eqx.combine(jax.lax.optimization_barrier(arrays), static)


def frontier(learner, sweep, episodes, chosen, *, mesh) -> dict:
    """Mean test novel accuracy and base retention at every grid point of `learner`
    (flattened in grid order), and the index of the validation choice `chosen`; episodes
    split over the devices of `mesh`."""
    num = jax.tree_util.tree_leaves(episodes)[0].shape[0]
    grid = learner.grid()
    table = sweep_grid(learner, sweep, episodes, chunk=50, mesh=mesh).mean(axis=len(grid))
    index = tuple(list(values).index(chosen[name]) for name, values in grid.items())
    points = [dict(zip(grid, combo)) for combo in np.ndindex(table.shape[:-1])]
    return {
        "grid": {name: list(values) for name, values in grid.items()},
        "points": [{n: grid[n][i] for n, i in p.items()} for p in points],
        "novel": table[..., 0].ravel().tolist(),
        "base": table[..., 1].ravel().tolist(),
        "ten_way": table[..., 2].ravel().tolist(),
        "selected": int(np.ravel_multi_index(index, table.shape[:-1])),
        "episodes": num,
    }
