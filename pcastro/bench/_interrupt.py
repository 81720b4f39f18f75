"""Interrupted one-shot learning: learn A, get interrupted by B, recall A, consolidate.

Task A is digits 0-4 and task B digits 5-9, one support image per class by default, one
shared 10-way output. Every condition runs on the same modules; accuracy on A and on B is
measured after each phase:

- `A_k`: after the first `k` updates on A (the interruption point);
- `B`: after learning B;
- `final`: after the condition's resume or consolidation phase (equal to `B` for the
  conditions that have none).

PC conditions with the store snapshot A's stimuli at the interruption and B's after B, so
the store holds every stimulus presented; consolidation then replays them by priority (one
update per stored stimulus per round). The replay control replays the same stimuli one at
a time, interleaved, from fresh states, with no priority, gate or discard, and the same
number of updates.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from .._sharding import make_mesh
from ..data import load_dataset, sample_episodes
from ._conditions import CONDITIONS, make_conditions
from ._config import hidden_units, make_solver
from ._learners import PC, Backprop, PCRule, accuracy, make_model
from ._records import grid_edges, progress_bar, result_row, select_on_validation, timed, tune
from ._report import original_labels, payload, resolved_config
from ._schedules import Consolidate, Interrupted
from ._stats import mean_ci95

TASK_A = (0, 1, 2, 3, 4)
TASK_B = (5, 6, 7, 8, 9)
PHASES = ("A_k", "B", "final")

# (condition, its control): the astrocyte conditions against plain interleaved replay of
# the same stimuli (what the astrocyte adds beyond replay), the gated store against the
# same store with its astrocytes ablated, replay against no replay, and PC's replay of A
# after B against backprop's rehearsal of A during B.
PAIRS = (
    ("pc_store_stored", "pc_replay"),
    ("pc_store_fresh", "pc_replay"),
    ("pc_store_ne", "pc_replay"),
    ("pc_store_no_ne", "pc_replay"),
    ("pc_astro_ablated", "pc_replay"),
    ("pc_store_ne", "pc_astro_ablated"),  # the gate alone: same store, astrocytes silenced
    ("pc_replay", "pc_no_store"),
    ("pc_replay", "backprop_rehearse"),
)


def _interruption(cfg, n: int) -> int:
    return max(1, min(n - 1, int(round(cfg.interrupt_fraction * n))))


def _tasks(key_a, key_b, x, y, num, cfg):
    common = dict(ways=5, shots=cfg.shots, queries=cfg.queries, num=num)
    ep_a = sample_episodes(key_a, x, y, classes=TASK_A, **common)
    ep_b = sample_episodes(key_b, x, y, classes=TASK_B, **common)
    return (*original_labels(ep_a), *original_labels(ep_b))


def _episode(learner, schedule, *, lr, n, k, sizes):
    """One episode of one condition, `(key, ax, ay, aqx, aqy, bx, by, bqx, bqy)` ->
    accuracy on (A, B) after each phase, `(3, 2)`."""

    def run(episode):
        key, ax, ay, aqx, aqy, bx, by, bqx, bqy = episode

        def score(state):
            return jnp.stack(
                [accuracy(learner, state, aqx, aqy), accuracy(learner, state, bqx, bqy)]
            )

        state = learner.start(make_model(key, sizes), lr)
        return schedule.run(learner, state, (ax, ay), (bx, by), k=k, n=n, score=score, key=key)

    return run


def run_interrupt(cfg, *, progress: bool = True) -> dict:
    """Run the interruption benchmark and return the `results.json` payload.

    **Arguments:**

    - `cfg`: a [`pcastro.bench.InterruptConfig`][].
    - `progress`: show a progress bar.

    **Returns:**

    A dict with `config`, `versions`, `device`, `devices` (how many the episodes were
    split over), `seed`, `results` (a list of `{method, phase, task, mean, ci95, n}`)
    and `details` (selected hyperparameters, timing).
    """
    t0 = time.perf_counter()
    mesh = make_mesh(cfg.devices)
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    features = ds.x_train.shape[1]
    sizes = (features, hidden_units(cfg, features), 10)
    k_tune, k_a, k_b, k_init = jax.random.split(jax.random.key(cfg.seed), 4)
    rule = PCRule(steps=cfg.inference_steps, solver=make_solver(cfg))
    # Learning rate and update count per update rule, from learning curves on 10-way
    # validation episodes of the training split; at least two updates so that A can be
    # interrupted part-way.
    updates = tuple(range(2, cfg.max_updates + 1))
    pc = PC(rule=rule, lrs=cfg.lrs, updates=updates)
    backprop = Backprop(lrs=cfg.lrs, updates=updates)
    names = cfg.methods or CONDITIONS
    selected, chosen = {}, {}
    with progress_bar(3 + len(names), enabled=progress) as bar:
        bar.set_description("tuning PC and backprop on validation episodes")
        for i, learner in enumerate((pc, backprop)):
            hp, val_acc = _tune(cfg, ds, learner, sizes, jax.random.fold_in(k_tune, i == 0),
                                mesh=mesh)  # fmt: skip
            chosen[learner.rule] = hp
            edges = grid_edges(hp, learner.grid())
            selected[learner.name] = {**hp, "val_acc": val_acc, "at_edge": edges}
            bar.update(1)

        # The store's tolerance and start (stored or fresh states), chosen on validation
        # episodes from the training split by final accuracy on A and B.
        bar.set_description("choosing the store's tolerance and start on validation episodes")
        hp = chosen[rule]
        keys = (k_a, k_b, k_init)
        store, selected["store"] = _choose_store(cfg, ds, pc, hp, sizes, keys=keys, mesh=mesh)
        bar.update(1)

        test_set = (jax.random.split(k_init, cfg.episodes),)
        test_set += _tasks(k_a, k_b, ds.x_test, ds.y_test, cfg.episodes, cfg)
        conditions = make_conditions(pc, backprop, ne=cfg.ne, **store)
        results, timing = [], {}
        for name in names:
            bar.set_description(name)
            learner, schedule = conditions[name]
            hp = chosen.get(learner.rule, chosen[rule])
            n, k = hp["updates"], _interruption(cfg, hp["updates"])
            episode = _episode(learner, schedule, lr=hp["lr"], n=n, k=k, sizes=sizes)
            out, t = timed(jax.vmap(episode), test_set, in_axes=(0,), mesh=mesh)
            timing[name] = t.record(updates=n, interrupted_at=k)
            out = np.asarray(out)  # (episodes, phases, tasks)
            for p, phase in enumerate(PHASES):
                for j, task in enumerate(("A", "B")):
                    results.append(result_row(name, out[:, p, j], phase=phase, task=task))
            bar.update(1)
    details = {"selected": selected, "timing": timing, "wall_s": time.perf_counter() - t0}
    out = payload(
        resolved_config(cfg, results, features=features), cfg.seed, results, details,
        devices=mesh.size,
    )  # fmt: skip
    out["paired"] = paired_differences(results)
    return out


def _tune(cfg, ds, learner, sizes, key, *, mesh):
    """`(hyperparameters, validation accuracy)` of `learner` from learning curves on
    10-way validation episodes of the training split drawn with `key`."""
    val = sample_episodes(
        key, ds.x_train, ds.y_train, num=cfg.val_episodes, ways=10, shots=cfg.shots,
        queries=cfg.queries,
    )  # fmt: skip
    keys = jax.random.split(jax.random.fold_in(key, 7), cfg.val_episodes)

    def sweep(episode, lr):
        key, sx, sy, qx, qy = episode
        evaluate = lambda state: accuracy(learner, state, qx, qy)  # noqa: E731
        return learner.sweep(make_model(key, sizes), sx, sy, lr, evaluate, key=key)

    return tune(learner, sweep, (keys, *original_labels(val)), mesh=mesh)


def _choose_store(cfg, ds, pc, hp, sizes, *, keys, mesh):
    """The store's tolerance and start (stored or fresh states) with the best final
    accuracy on A and B over validation episodes of the training split, PC at its chosen
    `hp`; returns `(choice, selection record)`."""
    k_a, k_b, k_init = keys
    lr, n = hp["lr"], hp["updates"]
    val_keys = jax.random.split(jax.random.fold_in(k_init, 1), cfg.val_episodes)
    val_a, val_b = jax.random.fold_in(k_a, 1), jax.random.fold_in(k_b, 1)
    val_set = (val_keys, *_tasks(val_a, val_b, ds.x_train, ds.y_train, cfg.val_episodes, cfg))
    scores = np.zeros((2, len(cfg.tols)))
    for i, fresh in enumerate((False, True)):

        def over_tols(episode, tols, fresh=fresh):
            def one(tol):
                schedule = Interrupted(resume=Consolidate(fresh=fresh, tol=tol, ne=None))
                k = _interruption(cfg, n)
                return _episode(pc, schedule, lr=lr, n=n, k=k, sizes=sizes)(episode)

            return jax.vmap(one)(tols)

        out, _ = timed(
            jax.vmap(over_tols, in_axes=(0, None)), val_set, jnp.asarray(cfg.tols),
            in_axes=(0, None), mesh=mesh,
        )  # fmt: skip
        # (episodes, tols, phases, tasks): mean final accuracy on A and B per tolerance.
        scores[i] = np.asarray(out)[:, :, 2, :].mean(axis=(0, 2))
    grid = {"fresh": (False, True), "tol": cfg.tols}
    store, val_final = select_on_validation(scores, grid)
    record = {
        **store,
        "val_final_acc": val_final,
        "at_edge": grid_edges(store, grid),
        "candidates": [
            {"fresh": f, "tol": t, "val_final_acc": float(scores[i, j])}
            for i, f in enumerate(grid["fresh"])
            for j, t in enumerate(grid["tol"])
        ],
    }
    return store, record


def final_differences(results: list[dict]) -> dict[tuple[str, str, str], np.ndarray]:
    """Each condition minus its control (`PAIRS`) after the final phase, episode by
    episode: `{(method, control, task): differences}` for task `A`, `B` and `mean` (of A
    and B). Every condition runs on the same test episodes and initial weights."""
    final = {
        (r["method"], r["task"]): np.asarray(r["values"]) for r in results if r["phase"] == "final"
    }
    out = {}
    for method, control in PAIRS:
        if (method, "A") not in final or (control, "A") not in final:
            continue
        for task in ("A", "B", "mean"):
            if task == "mean":
                a = (final[(method, "A")] + final[(method, "B")]) / 2
                b = (final[(control, "A")] + final[(control, "B")]) / 2
            else:
                a, b = final[(method, task)], final[(control, task)]
            out[(method, control, task)] = a - b
    return out


def paired_differences(results: list[dict]) -> list[dict]:
    """The mean of `final_differences` and the half-width of its 95% Student-t
    interval over episodes: rows `{method, vs, task, diff, ci95, n}`."""
    rows = []
    for (method, control, task), d in final_differences(results).items():
        diff, ci, n = mean_ci95(d)
        rows.append({"method": method, "vs": control, "task": task, "diff": diff,
                     "ci95": ci, "n": n})  # fmt: skip
    return rows
