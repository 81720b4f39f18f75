"""The scratch protocol: N-way K-shot learning from nothing.

Each episode gives every learner a fresh network and the whole support set at once; its
hyperparameters are tuned on validation episodes from the training split, and it is
scored by query accuracy on test episodes from the test split.
"""

import jax

from ..data import sample_episodes
from ._config import hidden_units
from ._learners import AbstractLearner, accuracy, make_model
from ._records import failures, grid_edges, result_row, run_test_episodes, tune


def run_scratch(cfg, ds, learners: list[AbstractLearner], bar, *, mesh) -> tuple[list[dict], dict]:
    """Tune and test every learner, episodes split over the devices of `mesh`; returns
    `(results, details)`."""
    k_val, k_test, k_init = jax.random.split(jax.random.key(cfg.seed), 3)
    common = dict(ways=cfg.ways, shots=cfg.shots, queries=cfg.queries)
    val = sample_episodes(k_val, ds.x_train, ds.y_train, num=cfg.val_episodes, **common)
    test = sample_episodes(k_test, ds.x_test, ds.y_test, num=cfg.episodes, **common)
    # Same initial weights for every learner: episode i starts from key i.
    val_keys = jax.random.split(jax.random.fold_in(k_init, 1), cfg.val_episodes)
    test_keys = jax.random.split(jax.random.fold_in(k_init, 2), cfg.episodes)
    val_set = (val_keys, val.support_x, val.support_y, val.query_x, val.query_y)
    test_set = (test_keys, test.support_x, test.support_y, test.query_x, test.query_y)
    features = ds.x_train.shape[1]
    sizes = (features, hidden_units(cfg, features), cfg.ways)

    results, selected, timing = [], {}, {}
    for learner in learners:
        hp = {}
        if learner.grid():
            bar.set_description(f"{learner.name}: tuning on validation episodes")

            def sweep(episode, lr, learner=learner):
                key, sx, sy, qx, qy = episode
                return learner.sweep(
                    make_model(key, sizes),
                    sx,
                    sy,
                    lr,
                    lambda state: accuracy(learner, state, qx, qy),
                    key=key,
                )

            hp, val_acc = tune(learner, sweep, val_set, mesh=mesh)
            edges = grid_edges(hp, learner.grid())
            selected[learner.name] = {**hp, "val_acc": val_acc, "at_edge": edges}
            bar.update(1)

        def test_episode(episode, lr, learner=learner, hp=hp):
            key, sx, sy, qx, qy = episode
            state = learner.start(make_model(key, sizes), lr)
            state = learner.learn(state, sx, sy, {**hp, "lr": lr}, key=key)
            return accuracy(learner, state, qx, qy), failures(state)

        bar.set_description(f"{learner.name}: test episodes")
        acc, timing[learner.name] = run_test_episodes(
            learner, test_episode, test_set, hp, mesh=mesh
        )
        results.append(result_row(learner.name, acc, metric="accuracy"))
        bar.update(1)
    return results, {"selected": selected, "timing": timing}
