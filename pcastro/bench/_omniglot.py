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
    learners.append(
        pc_local_learners(
            rule,
            lrs=cfg.sgd_lrs,
            updates=updates,
            hidden=hidden_units(cfg, features),
            classes=1,
            blocks=1,
        )["pc_sgd"]
    )
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
    folder = find_omniglot(cfg.data_dir)
    t0 = time.perf_counter()
    background = load_characters(folder, cfg.background, size=cfg.image_size)
    evaluation = load_characters(folder, "evaluation", size=cfg.image_size)
    runs = load_official_runs(folder, size=cfg.image_size)
    load_s = time.perf_counter() - t0
    # Every fifth background character is held out for validation episodes.
    held_out = background.y % 5 == 0
    fit_chars = np.unique(background.y[~held_out])
    fit_y = np.searchsorted(fit_chars, background.y[~held_out]).astype(np.int32)
    fit_x = background.x[~held_out]
    val_x, val_y = background.x[held_out], background.y[held_out]

    features = fit_x.shape[1]
    k_val, k_test, k_init = jax.random.split(jax.random.key(cfg.seed), 3)
    net0 = make_body(cfg, k_init, features, len(fit_chars))
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

    common: dict[str, Any] = dict(shots=1, queries=cfg.queries)
    tasks = {}
    for ways in (5, 20):
        val = sample_episodes(
            jax.random.fold_in(k_val, ways),
            val_x,
            val_y,
            ways=ways,
            num=cfg.val_episodes,
            **common,
        )
        test = sample_episodes(
            jax.random.fold_in(k_test, ways),
            evaluation.x,
            evaluation.y,
            ways=ways,
            num=cfg.episodes,
            **common,
        )
        tasks[ways] = [(e.support_x, e.support_y, e.query_x, e.query_y) for e in (val, test)]
    labels = np.broadcast_to(np.arange(20, dtype=np.int32), (len(runs.support_x), 20))
    official = (runs.support_x, labels, runs.query_x, runs.query_y)

    results, selected, timing = [], {}, {}
    for learner in learners:
        net = pretrained[learner.rule]

        def episode_net(key, ways, net=net):
            return with_new_head(net, ways, key)

        chosen = {}
        for ways in (5, 20):
            val, _ = tasks[ways]
            keys = jax.random.split(jax.random.fold_in(k_init, 10 + ways), cfg.val_episodes)
            if learner.grid():
                bar.set_description(f"{learner.name}: tuning on {ways}-way validation episodes")

                def sweep(episode, lr, learner=learner, ways=ways):
                    key, sx, sy, qx, qy = episode
                    return learner.sweep(
                        episode_net(key, ways),
                        sx,
                        sy,
                        lr,
                        lambda state: accuracy(learner, state, qx, qy),
                        key=key,
                    )

                hp, score = tune(learner, sweep, (keys, *val), mesh=mesh)
                edges = grid_edges(hp, learner.grid())
                selected[f"{learner.name}/{ways}-way"] = {**hp, "val_acc": score, "at_edge": edges}
                chosen[ways] = hp
            else:
                chosen[ways] = {}
        bar.update(1)

        for task, ways, data in (
            ("official_runs_20way", 20, official),
            ("random_5way", 5, tasks[5][1]),
            ("random_20way", 20, tasks[20][1]),
        ):
            hp = chosen[ways]
            statics = {k: v for k, v in hp.items() if k != "lr"}
            num = data[0].shape[0]
            keys = jax.random.split(jax.random.fold_in(k_init, 100 + ways), num)

            def run(episode, lr, learner=learner, statics=statics):
                key, sx, sy, qx, qy = episode
                state = learner.start(episode_net(key, sy.shape[0]), lr)
                state = learner.learn(state, sx, sy, {**statics, "lr": lr}, key=key)
                return accuracy(learner, state, qx, qy), failures(state)

            bar.set_description(f"{learner.name}: {task}")
            acc, timing[f"{learner.name}/{task}"] = run_test_episodes(
                learner, run, (keys, *(jax.numpy.asarray(a) for a in data)), hp, mesh=mesh
            )
            results.append(result_row(learner.name, acc, metric=task))
        timing[learner.name] = timing[f"{learner.name}/random_20way"]
    details = {
        "selected": selected,
        "timing": timing,
        "load_s": load_s,
        "pretrain_s": pretrain_s,
        "background_characters": int(background.num_characters),
        "pretrain_characters": int(len(fit_chars)),
        "validation_characters": int(np.unique(val_y).size),
        "evaluation_characters": int(evaluation.num_characters),
    }
    return results, details
