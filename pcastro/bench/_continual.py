"""Split-MNIST class-incremental learning, the field's standard (van de Ven & Tolias 2019).

Five contexts, digits (0,1), (2,3), (4,5), (6,7), (8,9), learned one after another by one
MLP with a single shared 10-way output; no context label at test time. Each context is
learned for `iterations` mini-batches of `batch` images. After each context the network
is tested on every test image (the accuracy matrix `A[t, c]`: accuracy on context `c`'s
test images after learning context `t`); every `eval_every` iterations it is tested on
the first `curve_images` test images (the curve). The score is the mean over contexts of
`A[4, c]`, as in van de Ven & Tolias (2019).

Every method runs on the same seeds with the same data order (a seed fixes the initial
weights and the sequence of mini-batches), so differences between methods are paired.
Seeds are vmapped. Hyperparameters are selected by `select_on_validation` on a
validation split held out from the training images (never the test images).

??? cite "Reference"

    ```bibtex
    @article{vandeven2019three,
        title={Three scenarios for continual learning},
        author={van de Ven, Gido M. and Tolias, Andreas S.},
        journal={arXiv:1904.07734},
        year={2019}
    }
    ```
"""

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import RESULTS, CrossEntropy, make_mesh, mlp
from ..astro import Astrocytes
from ..data import load_dataset
from ._config import make_solver
from ._continual_methods import (
    AbstractContinualLearner,
    AstrocyteStore,
    ExperienceReplay,
    FineTune,
    exemplar_bytes,
)
from ._learners import BackpropRule, PCRule
from ._methods import CONTINUAL, method_names
from ._records import grid_edges, progress_bar, select_on_validation, timed
from ._report import payload, resolved_config
from ._stats import mean_ci95

CONTEXTS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))

# Method name -> (rule, what it is); budgets apply to the memory methods.
STORE_VARIANTS = {
    "pc_store_uniform": dict(priority=False, gate=False, discard=False),
    "pc_store_priority": dict(priority=True, gate=False, discard=True),
    "pc_store_gate": dict(priority=False, gate=True, discard=True),
    # The same gate, per stimulus: each current or replayed stimulus by its own E_r.
    "pc_store_gate_example": dict(priority=False, gate=True, discard=True, per_example=True),
    "pc_store_both": dict(priority=True, gate=True, discard=True),
    "pc_store_both_refresh": dict(priority=True, gate=True, discard=True, refresh=True),
    "pc_store_priority_refresh": dict(priority=True, gate=False, discard=True, refresh=True),
    "pc_store_ablated": dict(priority=True, gate=True, discard=True, ablated=True),
    # The uniform store without free states: about twice the slots in the same bytes.
    "pc_store_uniform_lean": dict(priority=False, gate=False, discard=False, states=False),
    # Prioritised replay from the store without states, every slot's E_r measured again at
    # the current network every `refresh_every` iterations (fresh, not stale, priorities).
    "pc_store_priority_lean": dict(
        priority=True, gate=False, discard=False, states=False, remeasure=True, own_grid=True
    ),
    # The per-example gate on the store without states: uniform draws, each current and
    # replayed stimulus gated by its own E_r as measured at this replay (the astrocyte
    # reads the stimulus's present error; the replayed slots' E_r are written back), no
    # discard.
    "pc_store_gate_example_lean": dict(
        priority=False,
        gate=True,
        discard=False,
        per_example=True,
        states=False,
        refresh=True,
        own_grid=True,
    ),
    # Uniform replay that continues from each slot's stored states (`--resume-steps`
    # inference steps instead of a fresh start and the rule's steps): the store's states
    # put to use, at a fraction of the replay's inference.
    "pc_store_resume": dict(priority=False, gate=False, discard=False, resume=True),
}
METHODS = method_names("continual")
MEMORY_METHODS = tuple(
    name for name, m in CONTINUAL.items() if m.group in ("replay", "prioritised_replay", "store")
)


def _joint(name: str) -> bool:
    """Whether method `name` trains on every context so far."""
    return CONTINUAL[name].group == "joint"


def make_network(key, sizes):
    """784-400-400-10 (by default) ReLU MLP with a cross-entropy output node."""
    return mlp(list(sizes), key=key, activation=jax.nn.relu, output_energy=CrossEntropy())


def store_capacity(budget: int, sizes, *, replay_batch: int = 1, states: bool = True) -> int:
    """Slots of a store (with or without states) whose bytes equal (at most) those of
    `budget` raw exemplars."""
    probe = AstrocyteStore(
        rule=PCRule(steps=1), lr=1e-3, capacity=1, replay_batch=replay_batch, states=states
    )
    net = make_network(jax.random.key(0), sizes)
    per_slot = probe.memory_bytes(net)
    return max(1, (budget * exemplar_bytes(net)) // per_slot)


def make_learner(
    name: str, *, lr, budget, cfg, sizes, tol=0.0, alpha=1.0, g0=0.0
) -> AbstractContinualLearner:
    """The learner of method `name` at learning rate `lr` and memory budget `budget`
    (exemplars; the store gets the same bytes); `tol`, `alpha` and `g0` are the store's
    discard tolerance, priority exponent and gate floor."""
    method = CONTINUAL[name]
    pc_rule = PCRule(steps=cfg.inference_steps, solver=make_solver(cfg))
    rule = pc_rule if method.rule == "pc" else BackpropRule()
    if method.group in ("finetune", "joint"):
        return FineTune(rule=rule, lr=lr)
    if method.group in ("replay", "prioritised_replay"):
        return ExperienceReplay(
            rule=rule,
            lr=lr,
            memory=budget,
            replay_batch=cfg.replay_batch,
            prioritised=method.group == "prioritised_replay",
        )
    v = STORE_VARIANTS[name]
    astrocytes = None
    if v["gate"]:
        astrocytes = Astrocytes(tau_c=2.0, c_half=0.05, g0=g0, ablated=v.get("ablated", False))
    return AstrocyteStore(
        rule=pc_rule,
        lr=lr,
        capacity=store_capacity(budget, sizes, states=v.get("states", True)),
        replay_batch=cfg.replay_batch,
        priority=v["priority"],
        alpha=alpha,
        astrocytes=astrocytes,
        ne=cfg.ne,
        refresh=v.get("refresh", False),
        refresh_every=cfg.refresh_every if v.get("remeasure", False) else 0,
        resume_steps=cfg.resume_steps if v.get("resume", False) else 0,
        tol=tol if v["discard"] else 0.0,
        states=v.get("states", True),
        per_example=v.get("per_example", False),
    )


# ---- data and streams -------------------------------------------------------------------


def split_validation(y, fraction: float, seed: int = 0):
    """Indices of (train, validation) images: `fraction` of each class held out.

    **Raises:**

    `ValueError` when the split leaves a class without a validation or a training image:
    hyperparameters selected on an empty split would be selected on nothing.
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cut = int(round(fraction * len(idx)))
        if not 0 < cut < len(idx):
            least = 0.5 / min(np.bincount(np.asarray(y)[np.asarray(y) >= 0]))
            raise ValueError(
                f"`--val-fraction {fraction}` holds out {cut} of the {len(idx)} training "
                f"images of class {c}, leaving it without "
                + ("validation" if cut == 0 else "training")
                + f" images; use a fraction between {least:.2g} and {1 - least:.2g} on this "
                "dataset (default 0.1)."
            )
        val.append(idx[:cut])
        train.append(idx[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def check_budgets(
    budgets, train_images: int, features: int, *, seeds: int = 1, memory=None
) -> None:
    """Refuse, before any work, a memory budget no run could use or hold.

    A budget above the training images stores the whole set (and every larger budget
    the same); one whose memory (raw exemplars in float32, for each method's buffer and
    the store's slots of the same bytes, on each of the seeds run at once) exceeds what
    this machine has would fail part-way through the run.
    """
    too_big = [b for b in budgets if b > train_images]
    if too_big:
        raise ValueError(
            f"`--budgets` {too_big} exceed the {train_images} training images: a memory "
            f"cannot hold more than all of them. Use budgets up to {train_images}."
        )
    if memory is None:
        import os

        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    # Raw exemplars (float32 pixels and a label) and the store's slots of the same bytes,
    # plus the streams and copies XLA keeps beside them: 4 copies is a generous bound.
    need = 4 * seeds * max(budgets) * (4 * features + 4)
    if need > memory:
        raise ValueError(
            f"`--budgets {max(budgets)}` needs about {need / 2**30:.1f} GiB of memory and "
            f"this machine has {memory / 2**30:.1f} GiB; use smaller budgets."
        )


def context_of(y):
    return np.asarray(y) // 2


def make_stream(seed: int, y, *, iterations: int, batch: int, joint: bool = False):
    """Mini-batch indices `(contexts, iterations, batch)` into `y` for one seed: each
    context's images in shuffled epochs (joint: all contexts so far)."""
    rng = np.random.default_rng([seed, int(joint)])
    ctx = context_of(y)
    out = np.empty((len(CONTEXTS), iterations * batch), np.int32)
    for t in range(len(CONTEXTS)):
        pool = np.flatnonzero(ctx <= t) if joint else np.flatnonzero(ctx == t)
        epochs = -(-iterations * batch // len(pool))
        out[t] = np.concatenate([rng.permutation(pool) for _ in range(epochs)])[: out.shape[1]]
    return out.reshape(len(CONTEXTS), iterations, batch)


# ---- one run ------------------------------------------------------------------------------


def _per_context_accuracy(net, x, y):
    correct = jnp.argmax(jax.vmap(net)(x), axis=-1) == y
    ctx = y // 2
    hits = jax.ops.segment_sum(correct.astype(jnp.float32), ctx, len(CONTEXTS))
    counts = jax.ops.segment_sum(jnp.ones_like(hits[ctx]), ctx, len(CONTEXTS))
    return hits / counts


def majority_fraction(net, x):
    """The fraction of the images in `x` that `net` assigns to its most frequent class:
    1.0 means a collapsed network whose output no longer depends on the input (dead ReLU
    units, a diverged update); a network that has forgotten all but the last context of
    split-MNIST sits near 0.5."""
    pred = jnp.argmax(jax.vmap(net)(x), axis=-1)
    counts = jax.ops.segment_sum(jnp.ones_like(pred, jnp.float32), pred, 10)
    return jnp.max(counts) / pred.shape[0]


COLLAPSED = 0.9  # majority fraction above which a seed's final network is called collapsed
RECALL_FLOOR = 0.1  # a class recalled below this is "not predicted" (chance is 0.1)
FLAGGED = 0.01  # fraction of failed solves/updates above which a seed is marked flagged


def class_recall(net, x, y):
    """Per class (0-9), the fraction of its test images that `net` predicts correctly."""
    correct = (jnp.argmax(jax.vmap(net)(x), axis=-1) == y).astype(jnp.float32)
    hits = jax.ops.segment_sum(correct, y, 10)
    return hits / jnp.maximum(jax.ops.segment_sum(jnp.ones_like(correct), y, 10), 1.0)


def collapsed_seeds(name: str, majority, recall) -> np.ndarray:
    """Per seed, whether the final network collapsed: it gives one class to more than
    90% of the images, or (for a method that keeps or sees every context to the end:
    memory methods and joint training) fewer than half of the ten classes are recalled
    above chance. Fine-tuning ends predicting its last context's two classes by design
    (forgetting), so only the first rule applies to it."""
    majority, recall = np.asarray(majority), np.asarray(recall)
    bad = majority > COLLAPSED
    if name in MEMORY_METHODS or _joint(name):
        bad |= np.sum(recall >= RECALL_FLOOR, axis=-1) < 5
    return bad


def make_run(learner, sizes, *, eval_every: int):
    """`run(seed_key, stream, x, y_onehot, test_x, test_y, curve_x, curve_y)` ->
    `(matrix (contexts, contexts), curve (contexts, iterations // eval_every, contexts),
    majority fraction of the final network on the test images, its per-class recall (10,),
    status counts (one per pcastro.RESULTS code, over every iteration))`, written for
    one seed (vmap it)."""

    def run(key, stream, x, y1h, test_x, test_y, curve_x, curve_y):
        k_init, k_run = jax.random.split(key)
        net = make_network(k_init, sizes)
        state = learner.init(net, key=k_init)

        # Each iteration's index in the stream, built here from static shapes, so it is
        # not batched when the seeds are vmapped (a learner's schedule stays a branch).
        contexts, per_context = stream.shape[0], stream.shape[1]
        steps = jnp.arange(contexts * per_context).reshape(contexts, -1, eval_every)

        def iteration(carry, xs):
            idx, t = xs
            state, key, counts = carry
            key, sub = jax.random.split(key)
            state, status = learner.step(state, x[idx], y1h[idx], key=sub, iteration=t)
            return (state, key, counts.at[status].add(1)), None

        def chunk(carry, xs):
            carry, _ = lax.scan(iteration, carry, xs)
            return carry, _per_context_accuracy(learner.network(carry[0]), curve_x, curve_y)

        def context(carry, xs):
            idx, t = xs
            idx = idx.reshape(-1, eval_every, idx.shape[-1])
            carry, curve = lax.scan(chunk, carry, (idx, t))
            matrix_row = _per_context_accuracy(learner.network(carry[0]), test_x, test_y)
            return carry, (matrix_row, curve)

        counts0 = jnp.zeros(len(RESULTS), jnp.int32)
        (state, _, counts), (matrix, curve) = lax.scan(
            context, (state, k_run, counts0), (stream, steps)
        )
        final = learner.network(state)
        return (
            matrix,
            curve,
            majority_fraction(final, test_x),
            class_recall(final, test_x, test_y),
            counts,
        )

    return run


class RunResult(NamedTuple):
    """What [`run_seeds`][] returns, per seed where it has a leading axis `S`."""

    matrix: np.ndarray  # (S, C, C) accuracy after each context on each context
    curve: np.ndarray  # (S, C, points, C) learning curves
    majority: np.ndarray  # (S,) majority fraction of the final network
    recall: np.ndarray  # (S, 10) per-class recall of the final network
    counts: np.ndarray  # (S, len(RESULTS)) iterations ending with each status
    compile_s: float
    run_s: float


def status_summary(counts: np.ndarray) -> dict:
    """Per-seed counts of every failure status and the seeds with more than 1% of their
    iterations failed (`flagged`)."""
    counts = np.asarray(counts)
    total = counts.sum(axis=-1)
    failed = total - counts[:, RESULTS.successful]
    return {
        "status_counts_per_seed": {
            r.name: counts[:, int(r)].tolist() for r in RESULTS if r is not RESULTS.successful
        },
        "failed_per_seed": failed.tolist(),
        "iterations_per_seed": total.tolist(),
        "flagged_seeds": int(np.sum(failed > FLAGGED * total)),
    }


def run_seeds(learner, sizes, seeds, data, *, cfg, joint: bool, evaluate_on, mesh) -> RunResult:
    """Run `learner` on every seed (vmapped, the seeds split over the devices of `mesh`):
    accuracy matrices `(S, C, C)`, curves, the final networks' majority fractions and
    per-class recalls, every iteration's status counted, and compile/run seconds."""
    x, y, test_x, test_y = data[:4] if evaluate_on == "test" else data[4:]
    streams = np.stack(
        [make_stream(s, y, iterations=cfg.iterations, batch=cfg.batch, joint=joint) for s in seeds]
    )
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    n_curve = min(cfg.curve_images, len(test_y))
    args = (
        keys,
        jnp.asarray(streams),
        jnp.asarray(x),
        jax.nn.one_hot(jnp.asarray(y), 10, dtype=jnp.float32),
        jnp.asarray(test_x),
        jnp.asarray(test_y),
        jnp.asarray(test_x[:n_curve]),
        jnp.asarray(test_y[:n_curve]),
    )
    in_axes = (0, 0) + (None,) * 6
    fn = jax.vmap(make_run(learner, sizes, eval_every=cfg.eval_every), in_axes=in_axes)
    (matrix, curve, majority, recall, counts), t = timed(fn, *args, in_axes=in_axes, mesh=mesh)
    return RunResult(
        np.asarray(matrix),
        np.asarray(curve),
        np.asarray(majority),
        np.asarray(recall),
        np.asarray(counts),
        t.compile_s,
        t.run_s,
    )


def final_accuracy(matrix):
    """Mean over contexts of the accuracy after the last context, per seed."""
    return matrix[:, -1, :].mean(axis=-1)


# ---- the benchmark --------------------------------------------------------------------------


def _budgets(name, cfg):
    return cfg.budgets if name in MEMORY_METHODS else (None,)


def _grid(name, cfg):
    grid = {"lr": cfg.pc_lrs if CONTINUAL[name].rule == "pc" else cfg.lrs}
    variant = STORE_VARIANTS.get(name, {})
    if variant.get("discard"):
        grid["tol"] = cfg.tols
    if variant.get("priority"):
        grid["alpha"] = cfg.priority_alphas
    if variant.get("gate"):
        grid["g0"] = cfg.gate_floors
    return grid


def _store_hp(hp) -> dict:
    return {k: hp[k] for k in ("tol", "alpha", "g0") if k in hp}


def _tuning_key(name):
    """Methods that share a selection: the store variants (and the ablated control) use
    the setting chosen for the full astrocyte method, so that their differences are the
    mechanism's alone; a store without states uses the setting of its twin with states,
    so that their difference is the slots alone. A variant marked `own_grid` (the
    prioritised and the per-example gated stores without states) is selected on its own
    grid (learning rate and priority exponent or gate floor)."""
    if STORE_VARIANTS.get(name, {}).get("own_grid"):
        return name
    if name == "pc_store_resume":
        return "pc_store_uniform"
    name = name.removesuffix("_lean")
    if name in STORE_VARIANTS and name != "pc_store_uniform":
        return "pc_store_both"
    return name


def _select(key: str, name: str, cfg, sizes, val_seeds, data, *, mesh) -> dict:
    """The hyperparameters of `key` with the best final accuracy over the validation
    seeds (collapsed candidates counted and never chosen), with every candidate's score."""
    largest = max(cfg.budgets)
    grid = _grid(key, cfg)
    points = [dict(zip(grid, v)) for v in np.ndindex(*map(len, grid.values()))]
    scores, failures = [], []
    # A single candidate needs no validation run.
    for point in points if len(points) > 1 else ():
        hp = {k: grid[k][i] for k, i in point.items()}
        learner = make_learner(
            key, budget=largest, cfg=cfg, sizes=sizes, lr=hp["lr"], **_store_hp(hp)
        )
        run = run_seeds(
            learner, sizes, val_seeds, data, cfg=cfg, joint=_joint(key),
            evaluate_on="validation", mesh=mesh,
        )  # fmt: skip
        if np.any(collapsed_seeds(key, run.majority, run.recall)):
            # Counted, and never chosen: a collapsed candidate scores NaN.
            failures.append({**hp, **status_summary(run.counts)})
            scores.append(float("nan"))
        else:
            scores.append(float(final_accuracy(run.matrix).mean()))
    scores = scores or [float("nan")]
    table = np.asarray(scores).reshape([len(v) for v in grid.values()])
    hp, score = select_on_validation(table, grid)
    return {
        **hp,
        "val_final_acc": score,
        "at_edge": grid_edges(hp, grid),
        "candidates": [
            {**{k: grid[k][i] for k, i in p.items()}, "val_final_acc": s}
            for p, s in zip(points, scores)
        ],
        "budget": largest if name in MEMORY_METHODS else None,
        "collapsed_candidates": failures,
    }


def _result_row(name: str, budget, learner, run, hp: dict, sizes) -> dict:
    """One `results.json` row: final accuracy over the test seeds with every per-seed
    value, collapse and inference statuses, memory and timing."""
    matrix, curve, majority = run.matrix, run.curve, run.majority
    final = final_accuracy(matrix)
    collapsed = collapsed_seeds(name, majority, run.recall)
    mean, ci, n = mean_ci95(final)
    net = make_network(jax.random.key(0), sizes)
    return {
        "method": name,
        "budget": budget,
        "capacity": getattr(learner, "capacity", getattr(learner, "memory", 0)),
        "memory_bytes": learner.memory_bytes(net),
        "mean": mean,
        "ci95": ci,
        "n": n,
        "per_seed": final.tolist(),
        "matrix_mean": matrix.mean(axis=0).tolist(),
        "matrix_per_seed": matrix.tolist(),
        "majority_fraction_per_seed": majority.tolist(),
        "class_recall_per_seed": run.recall.tolist(),
        "collapsed_per_seed": collapsed.tolist(),
        "collapsed_seeds": int(np.sum(collapsed)),
        **status_summary(run.counts),
        "curve_mean": curve.mean(axis=0).tolist(),
        "compile_s": run.compile_s,
        "run_s": run.run_s,
        "lr": hp["lr"],
        "tol": getattr(learner, "tol", None),
        "alpha": getattr(learner, "alpha", None)
        if STORE_VARIANTS.get(name, {}).get("priority")
        else None,
        "g0": learner.astrocytes.g0 if getattr(learner, "astrocytes", None) else None,  # pyright: ignore[reportAttributeAccessIssue]
    }


def run_continual(cfg, *, progress: bool = True) -> dict:
    """Run split-MNIST class-incremental learning and return the `results.json` payload.

    **Arguments:**

    - `cfg`: a [`pcastro.bench.ContinualConfig`][].
    - `progress`: show a progress bar.

    **Returns:**

    A dict with `config`, `versions`, `device`, `devices` (how many the seeds were split
    over), `seed`, `command`, `results` (one row per method and budget: final accuracy
    mean, 95% CI, per-seed values, accuracy matrix and curve means, how many seeds' final
    networks collapsed to one class (`majority_fraction` above 0.9), memory bytes,
    compile and run seconds), `paired` (per budget, each store variant minus the uniform store
    replay and minus PC experience replay, same seeds) and `details` (selected
    hyperparameters with their validation scores).
    """
    t_start = time.perf_counter()
    mesh = make_mesh(cfg.devices)
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    train, val = split_validation(ds.y_train, cfg.val_fraction, seed=cfg.seed)
    data = (
        ds.x_train[train], ds.y_train[train], ds.x_test, ds.y_test,
        ds.x_train[train], ds.y_train[train], ds.x_train[val], ds.y_train[val],
    )  # fmt: skip
    check_budgets(cfg.budgets, len(train), ds.x_train.shape[1], seeds=max(cfg.seeds, cfg.val_seeds))
    sizes = (ds.x_train.shape[1], *cfg.hidden, 10)
    names = cfg.methods or METHODS
    first = cfg.first_test_seed
    test_seeds = [cfg.seed + 1000 + i for i in range(first, first + cfg.seeds)]
    val_seeds = [cfg.seed + 2000 + i for i in range(cfg.val_seeds)]
    selected: dict[str, dict] = {}
    results: list[dict] = []
    raw: dict[tuple, np.ndarray] = {}
    todo = [(n, b) for n in names for b in _budgets(n, cfg)]
    with progress_bar(len(todo), enabled=progress) as bar:
        for name, budget in todo:
            key = _tuning_key(name)
            if key not in selected:
                bar.set_description(f"selecting {key} on validation")
                selected[key] = _select(key, name, cfg, sizes, val_seeds, data, mesh=mesh)
            hp = selected[key]
            bar.set_description(f"{name} M={budget}" if budget else name)
            learner = make_learner(
                name, lr=hp["lr"], budget=budget or 1, cfg=cfg, sizes=sizes, **_store_hp(hp)
            )
            run = run_seeds(
                learner, sizes, test_seeds, data, cfg=cfg, joint=_joint(name),
                evaluate_on="test", mesh=mesh,
            )  # fmt: skip
            raw[(name, budget)] = final_accuracy(run.matrix)
            results.append(_result_row(name, budget, learner, run, hp, sizes))
            bar.update(1)
    paired = paired_differences(raw, cfg.budgets)
    details = {
        "selected": selected,
        "test_seeds": test_seeds,
        "validation_seeds": val_seeds,
        "train_images": int(len(train)),
        "validation_images": int(len(val)),
        "test_images": int(len(ds.y_test)),
        "wall_s": time.perf_counter() - t_start,
    }
    out = payload(
        resolved_config(cfg, results, features=None), cfg.seed, results, details,
        devices=mesh.size,
    )  # fmt: skip
    out["paired"] = paired
    return out


def paired_differences(raw: dict, budgets) -> list[dict]:
    """Per budget, each store variant minus each control on the same seeds: mean and 95%
    CI of the per-seed differences (and whether the CI excludes 0).

    `raw` maps `(method, budget)` to per-seed final accuracies."""
    rows = []
    for budget in budgets:
        for control in ("pc_store_uniform", "pc_store_uniform_lean", "pc_er"):
            if (control, budget) not in raw:
                continue
            for name in STORE_VARIANTS:
                if name == control or (name, budget) not in raw:
                    continue
                diff = np.asarray(raw[(name, budget)]) - np.asarray(raw[(control, budget)])
                mean, ci, n = mean_ci95(diff)
                rows.append(
                    {
                        "method": name,
                        "control": control,
                        "budget": budget,
                        "mean_diff": mean,
                        "ci95": ci,
                        "n": n,
                        "excludes_zero": bool(abs(mean) > ci),
                        "per_seed": diff.tolist(),
                    }
                )
    return rows
