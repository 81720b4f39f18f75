"""Omniglot one-shot benchmark: pretrain on a background set, then one-shot learn new
characters of the evaluation alphabets.

Tasks: Lake et al.'s 20 official 20-way 1-shot runs, and random 5- and 20-way 1-shot
episodes on the evaluation set. The network (a tanh MLP on `image_size`^2 pixels, or with
`body="conv"` a small convolutional network of `pcastro.convnet` blocks) is pretrained to
classify four fifths of the background characters, by PC and by backprop on the same
modules; every learner gets that body with a new `ways`-unit output layer per
episode. Hyperparameters are tuned on validation episodes of the held-out fifth of the
background characters (never on evaluation characters), per number of ways; the official
runs use the 20-way choice.
"""

import math
import time
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .. import CrossEntropy, Network, Node, Reshape, convnet
from ..data import sample_episodes
from ..data._omniglot import find_omniglot, load_characters, load_official_runs
from ._config import hidden_units, make_solver
from ._learners import PC, Backprop, BackpropRule, PCRule, PixelNN, accuracy, make_model, pretrain
from ._methods import method_names
from ._readouts import pc_local_learners, readout_learners
from ._records import failures, grid_edges, result_row, run_test_episodes, tune


def with_new_head(net, ways: int, key):
    """`net`'s body (every node below the output, unchanged) under a new `ways`-unit
    linear output node with a cross-entropy energy."""
    hidden = net.shapes[-2][0]
    head = eqx.nn.Linear(hidden, ways, key=key, dtype=net.dtype)
    nodes = [*net.nodes[:-1], Node(head, energy=CrossEntropy())]
    return Network(nodes, input_shape=net.input_shape, dtype=net.dtype)


def make_body(cfg, key, features: int, classes: int):
    """The pretrained network: the benchmarks' tanh MLP `features-hidden-classes`, or
    (`cfg.body == "conv"`) `pcastro.convnet` on the `side x side` image with one ReLU
    hidden layer of `hidden` units. The conv network's first block reshapes the flat
    image, so both bodies take the same flat episodes."""
    hidden = hidden_units(cfg, features)
    if cfg.body == "mlp":
        return make_model(key, (features, hidden, classes))
    side = math.isqrt(features)
    net = convnet(
        (1, side, side),
        channels=cfg.conv_channels,
        hidden=(hidden,),
        num_classes=classes,
        key=key,
    )
    first = net.nodes[0]
    unflatten = Reshape((1, side, side))
    nodes = [
        Node(eqx.nn.Sequential([unflatten, first.modules[0]]), activation=first.activation),
        *net.nodes[1:],
    ]
    return Network(nodes, input_shape=(features,), dtype=net.dtype)


def omniglot_learners(cfg, features: int):
    # Convolutions inside `lax.scan` are several times slower on CPU: unroll inference.
    rule = PCRule(steps=cfg.inference_steps, solver=make_solver(cfg), unroll=cfg.body == "conv")
    updates = tuple(range(1, cfg.max_updates + 1))
    rules = {"pc": rule, "bp": BackpropRule()}
    learners = [
        PC(rule=rule, lrs=cfg.lrs, updates=updates),
        Backprop(lrs=cfg.lrs, updates=updates),
    ]
    # Column regions as in transfer: blocks of hidden units, then one per output unit of
    # the episode's new head (`classes=0`: as many as the head has).
    local = pc_local_learners(
        rule,
        lrs=cfg.sgd_lrs,
        updates=updates,
        hidden=hidden_units(cfg, features),
        classes=0,
        # (the width need not divide into blocks when no column astrocytes are asked for)
        blocks=cfg.hidden_columns if not cfg.methods or "pc_astro_target" in cfg.methods else 1,
    )
    learners += [local[name] for name in method_names("oneshot", group="pc_local",
                                                       protocol="omniglot")]  # fmt: skip
    for name in method_names("oneshot", group="readout", protocol="omniglot"):
        learners += readout_learners(
            name, rules=rules, lrs=cfg.lrs, updates=updates, replay_per_class=1, num_classes=20
        )
    learners.append(PixelNN())
    wanted = set(cfg.methods) | {"pixel_nn"} if cfg.methods else None
    return [
        learner for learner in learners if wanted is None or learner.name.split("@")[0] in wanted
    ]


def run_omniglot(cfg, bar, *, mesh) -> tuple[list[dict], dict]:
    """Pretrain, tune and test every learner on the three tasks, episodes split over the
    devices of `mesh`; `(results, details)`."""
    t0 = time.perf_counter()
    k_val, k_test, k_init = jax.random.split(jax.random.key(cfg.seed), 3)
    data = _omniglot_data(cfg, k_val, k_test)
    load_s = time.perf_counter() - t0
    fit_x, fit_y = data["fit"]
    features = fit_x.shape[1]
    net0 = make_body(cfg, k_init, features, data["fit_characters"])
    learners = omniglot_learners(cfg, features)
    bar.set_description("pretraining on the background characters")
    t1 = time.perf_counter()
    pretrained = {None: net0}
    for rule in dict.fromkeys(learner.rule for learner in learners if learner.rule):
        pretrained[rule] = pretrain(
            rule, net0, fit_x, fit_y, epochs=cfg.pretrain_epochs, seed=cfg.seed
        )
    pretrain_s = time.perf_counter() - t1
    bar.update(1)

    results, selected, timing = [], {}, {}
    for learner in learners:
        net = pretrained[learner.rule]
        chosen = {}
        for ways in (5, 20):
            chosen[ways], selection = _tune(cfg, learner, net, data["tasks"][ways][0], ways, bar,
                                            k_init=k_init, mesh=mesh)  # fmt: skip
            if selection is not None:
                selected[f"{learner.name}/{ways}-way"] = selection
        bar.update(1)
        for task, ways, episodes in (
            ("official_runs_20way", 20, data["official"]),
            ("random_5way", 5, data["tasks"][5][1]),
            ("random_20way", 20, data["tasks"][20][1]),
        ):
            bar.set_description(f"{learner.name}: {task}")
            acc, timing[f"{learner.name}/{task}"] = _test(
                cfg, learner, net, episodes, ways, chosen[ways], k_init=k_init, mesh=mesh
            )
            results.append(result_row(learner.name, acc, metric=task))
        timing[learner.name] = timing[f"{learner.name}/random_20way"]
    details = {
        "selected": selected,
        "timing": timing,
        "load_s": load_s,
        "pretrain_s": pretrain_s,
        **data["counts"],
    }
    return results, details


def _omniglot_data(cfg, k_val, k_test) -> dict[str, Any]:
    """The background characters to pretrain on (every fifth held out for validation
    episodes), the 5- and 20-way validation and test episodes, the 20 official runs."""
    folder = find_omniglot(cfg.data_dir)
    background = load_characters(folder, cfg.background, size=cfg.image_size)
    evaluation = load_characters(folder, "evaluation", size=cfg.image_size)
    runs = load_official_runs(folder, size=cfg.image_size)
    held_out = background.y % 5 == 0
    fit_chars = np.unique(background.y[~held_out])
    fit_y = np.searchsorted(fit_chars, background.y[~held_out]).astype(np.int32)
    fit_x = background.x[~held_out]
    val_x, val_y = background.x[held_out], background.y[held_out]
    common: dict[str, Any] = dict(shots=1, queries=cfg.queries)
    tasks = {}
    for ways in (5, 20):
        val = sample_episodes(
            jax.random.fold_in(k_val, ways), val_x, val_y, ways=ways, num=cfg.val_episodes,
            **common,
        )  # fmt: skip
        test = sample_episodes(
            jax.random.fold_in(k_test, ways), evaluation.x, evaluation.y, ways=ways,
            num=cfg.episodes, **common,
        )  # fmt: skip
        tasks[ways] = [(e.support_x, e.support_y, e.query_x, e.query_y) for e in (val, test)]
    labels = np.broadcast_to(np.arange(20, dtype=np.int32), (len(runs.support_x), 20))
    counts = {
        "background_characters": int(background.num_characters),
        "pretrain_characters": int(len(fit_chars)),
        "validation_characters": int(np.unique(val_y).size),
        "evaluation_characters": int(evaluation.num_characters),
    }
    return dict(
        fit=(fit_x, fit_y),
        fit_characters=len(fit_chars),
        tasks=tasks,
        official=(runs.support_x, labels, runs.query_x, runs.query_y),
        counts=counts,
    )


def _tune(cfg, learner, net, val, ways: int, bar, *, k_init, mesh):
    """`(hyperparameters, selection record or None)` of `learner` on the `ways`-way
    validation episodes (none to choose without a grid)."""
    if not learner.grid():
        return {}, None
    keys = jax.random.split(jax.random.fold_in(k_init, 10 + ways), cfg.val_episodes)
    bar.set_description(f"{learner.name}: tuning on {ways}-way validation episodes")

    def sweep(episode, lr):
        key, sx, sy, qx, qy = episode
        return learner.sweep(
            with_new_head(net, ways, key),
            sx,
            sy,
            lr,
            lambda state: accuracy(learner, state, qx, qy),
            key=key,
        )

    hp, score = tune(learner, sweep, (keys, *val), mesh=mesh)
    return hp, {**hp, "val_acc": score, "at_edge": grid_edges(hp, learner.grid())}


def _test(cfg, learner, net, episodes, ways: int, hp, *, k_init, mesh):
    """Accuracy of `learner` with `hp` on every test episode (a new head per episode)."""
    statics = {k: v for k, v in hp.items() if k != "lr"}
    keys = jax.random.split(jax.random.fold_in(k_init, 100 + ways), episodes[0].shape[0])

    def run(episode, lr):
        key, sx, sy, qx, qy = episode
        state = learner.start(with_new_head(net, sy.shape[0], key), lr)
        state = learner.learn(state, sx, sy, {**statics, "lr": lr}, key=key)
        return accuracy(learner, state, qx, qy), failures(state)

    return run_test_episodes(
        learner, run, (keys, *(jax.numpy.asarray(a) for a in episodes)), hp, mesh=mesh
    )
