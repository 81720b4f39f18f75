"""Interrupted one-shot learning: learn A, get interrupted by B, recall A, consolidate.

Task A is digits 0-4 and task B digits 5-9, one support image per class by default, one
shared 10-way output. Every condition runs on the same modules; accuracy on A and on B is
measured after each phase:

- `A_k`: after the first `k` updates on A (the interruption point);
- `B`: after learning B;
- `final`: after the condition's resume or consolidation phase (equal to `B` for the
  conditions that have none).

PC conditions snapshot A's stimuli at the interruption and B's after B, so the store holds
every stimulus presented; consolidation then replays them by priority (one update per
stored stimulus per round). The replay control replays the same stimuli one at a time,
interleaved, from fresh states, with no priority, gate or discard, and the same number of
updates.
"""

import time
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from tqdm.auto import tqdm

from .._inference import Euler, infer
from .._learning import train_step
from .._predict import accuracy
from .._state import init_state
from ..astro import (
    Astrocytes,
    apply_gated_grads,
    consolidate,
    make_regions,
    make_store,
    region_energies,
    scale_by_astrocytes,
    snapshot,
)
from ..baselines import backprop_step, pixel_nearest_neighbour
from ..data import load_dataset, sample_episodes
from ._learners import learning_curve, make_model, params_of
from ._report import original_labels, payload
from ._stats import mean_ci95

TASK_A = (0, 1, 2, 3, 4)
TASK_B = (5, 6, 7, 8, 9)
PHASES = ("A_k", "B", "final")

METHODS = (
    "backprop_sequential",
    "backprop_interrupted",
    "backprop_joint",
    "backprop_replay",
    "pc_no_store",
    "pc_replay",
    "pc_store_stored",
    "pc_store_fresh",
    "pc_store_ne",
    "pc_store_no_ne",
    "pc_astro_ablated",
    "pixel_nn",
)


@dataclass(frozen=True)
class InterruptConfig:
    """Settings of an interruption run (all recorded in `results.json`)."""

    dataset: str = "digits"
    episodes: int = 20
    val_episodes: int = 10
    shots: int = 1
    queries: int = 15
    seed: int = 0
    hidden: int | None = None
    inference_steps: int = 20
    dt: float = 0.1
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)
    max_updates: int = 40
    interrupt_fraction: float = 0.5
    ne: float = 1.0
    tols: tuple[float, ...] = (1e-3, 1e-2, 5e-2)
    data_dir: str | None = None
    methods: tuple[str, ...] = ()

    def __post_init__(self):
        if not 0.0 < self.interrupt_fraction < 1.0:
            raise ValueError(
                f"`interrupt_fraction` must be in (0, 1), got {self.interrupt_fraction}: A is "
                "interrupted after that fraction of its updates."
            )
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"Unknown methods {sorted(unknown)}; choose from {list(METHODS)}.")


def _gated_optimizer(lr, regions, *, ablated: bool):
    astro = Astrocytes(tau_c=2.0, k=1.0, theta=0.0, g0=0.0, c_half=0.05, ablated=ablated)
    return optax.chain(optax.adam(lr), scale_by_astrocytes(astro, regions))


def _pc_updates(net, opt_state, x, y, n, *, optimizer, cfg, gated=False, ne=0.0, regions=None):
    """`n` PC updates on one batch; gated ones feed `E_r` and NE to the astrocyte gate."""

    def body(carry, _):
        net, opt_state = carry
        if gated:
            sol = infer(
                net,
                init_state(net, x, y),
                solver=Euler(dt=cfg.dt),
                steps=cfg.inference_steps,
                throw=False,
            )
            net, opt_state = apply_gated_grads(
                net,
                opt_state,
                sol.state,
                optimizer=optimizer,
                region_energy=region_energies(sol.state, regions),
                ne=ne,
            )
        else:
            net, opt_state, _ = train_step(
                net,
                opt_state,
                x,
                y,
                optimizer=optimizer,
                solver=Euler(dt=cfg.dt),
                steps=cfg.inference_steps,
                throw=False,
            )
        return (net, opt_state), None

    (net, opt_state), _ = lax.scan(body, (net, opt_state), None, length=n)
    return net, opt_state


def _bp_updates(net, opt_state, x, y, n, *, optimizer):
    def body(carry, _):
        net, opt_state, _ = backprop_step(*carry, x, y, optimizer=optimizer)
        return (net, opt_state), None

    (net, opt_state), _ = lax.scan(body, (net, opt_state), None, length=n)
    return net, opt_state


def _episode(
    method, key, ax, ay, aqx, aqy, bx, by, bqx, bqy, tol=None, fresh=None, *, sizes, lr, n, k, cfg
):
    """One episode of one condition: accuracy on (A, B) after each phase, shape (3, 2)."""

    def score(net):
        return jnp.stack([accuracy(net, aqx, aqy), accuracy(net, bqx, bqy)])

    if method == "pixel_nn":
        sx, sy = jnp.concatenate([ax, bx]), jnp.concatenate([ay, by])
        acc = jnp.stack(
            [
                jnp.mean(pixel_nearest_neighbour(sx, sy, aqx) == aqy),
                jnp.mean(pixel_nearest_neighbour(sx, sy, bqx) == bqy),
            ]
        )
        return jnp.stack([acc, acc, acc])
    net = make_model(key, sizes)
    jx, jy = jnp.concatenate([ax, bx]), jnp.concatenate([ay, by])
    if method.startswith("backprop"):
        opt = optax.adam(lr)
        state = opt.init(params_of(net))
        if method == "backprop_joint":
            net, state = _bp_updates(net, state, jx, jy, k, optimizer=opt)
            first = score(net)
            net, state = _bp_updates(net, state, jx, jy, n - k, optimizer=opt)
            return jnp.stack([first, score(net), score(net)])
        net, state = _bp_updates(net, state, ax, ay, k, optimizer=opt)
        first = score(net)
        if method == "backprop_sequential":
            net, state = _bp_updates(net, state, ax, ay, n - k, optimizer=opt)
        if method == "backprop_replay":
            net, state = _bp_updates(net, state, jx, jy, n, optimizer=opt)
        else:
            net, state = _bp_updates(net, state, bx, by, n, optimizer=opt)
        after_b = score(net)
        if method == "backprop_interrupted":
            net, state = _bp_updates(net, state, ax, ay, n - k, optimizer=opt)
        return jnp.stack([first, after_b, score(net)])

    regions = make_regions(net)
    gated = method in ("pc_store_ne", "pc_store_no_ne", "pc_astro_ablated")
    if gated:
        opt = _gated_optimizer(lr, regions, ablated=method == "pc_astro_ablated")
    else:
        opt = optax.adam(lr)
    state = opt.init(params_of(net))
    present_ne = cfg.ne  # A and B are presented as salient stimuli
    net, state = _pc_updates(
        net, state, ax, ay, k, optimizer=opt, cfg=cfg, gated=gated, ne=present_ne, regions=regions
    )
    first = score(net)
    # The interruption: A's inferred states and local errors go into the store; B's go
    # in once B has been learned, so the store holds every stimulus presented.
    store = make_store(net, regions, capacity=ax.shape[0] + bx.shape[0])
    store, _ = snapshot(store, _relaxed(net, ax, ay, cfg), step=k)
    net, state = _pc_updates(
        net, state, bx, by, n, optimizer=opt, cfg=cfg, gated=gated, ne=present_ne, regions=regions
    )
    after_b = score(net)
    store, _ = snapshot(store, _relaxed(net, bx, by, cfg), step=n)
    rounds = n - k
    if method == "pc_no_store":
        return jnp.stack([first, after_b, after_b])
    if method == "pc_replay":
        # The control: the same stimuli replayed one at a time, A and B interleaved in a
        # fixed order, from fresh feedforward states, no priority, no gate, no discard;
        # as many single-stimulus updates as consolidation makes.
        order = jnp.stack(
            [jnp.arange(ax.shape[0]), ax.shape[0] + jnp.arange(bx.shape[0])], 1
        ).ravel()
        sx, sy = jx[order], jy[order]

        def one_round(carry, _):
            def one(carry, i):
                net, state = _pc_updates(
                    *carry, sx[i][None], sy[i][None], 1, optimizer=opt, cfg=cfg
                )
                return (net, state), None

            return lax.scan(one, carry, jnp.arange(sx.shape[0]))[0], None

        (net, state), _ = lax.scan(one_round, (net, state), None, length=rounds)
        return jnp.stack([first, after_b, score(net)])
    if method in ("pc_store_stored", "pc_store_fresh"):
        fresh = method == "pc_store_fresh"
    ne = 0.0 if method == "pc_store_no_ne" else cfg.ne
    net, state, store, _ = consolidate(
        net,
        state,
        store,
        optimizer=opt,
        ne=ne,
        steps=cfg.inference_steps,
        rounds=rounds,
        tol=tol,
        fresh=fresh,
        solver=Euler(dt=cfg.dt),
    )
    return jnp.stack([first, after_b, score(net)])


def _relaxed(net, x, y, cfg):
    return infer(
        net, init_state(net, x, y), solver=Euler(dt=cfg.dt), steps=cfg.inference_steps, throw=False
    ).state


def _tune(rule, cfg, ds, sizes, key, bar):
    """Learning rate and update count for `rule`, on validation episodes of the training
    split (joint A and B support; queries are other training images)."""
    val = sample_episodes(
        key,
        ds.x_train,
        ds.y_train,
        num=cfg.val_episodes,
        ways=10,
        shots=cfg.shots,
        queries=cfg.queries,
    )
    sx, sy, qx, qy = original_labels(val)
    keys = jax.random.split(jax.random.fold_in(key, 7), cfg.val_episodes)

    def curve(k, sx, sy, qx, qy, lr):
        return learning_curve(
            rule,
            k,
            sx,
            sy,
            qx,
            qy,
            lr,
            sizes=sizes,
            updates=cfg.max_updates,
            inference_steps=cfg.inference_steps,
            dt=cfg.dt,
        )

    f = jax.jit(
        jax.vmap(jax.vmap(curve, in_axes=(0, 0, 0, 0, 0, None)), in_axes=(None,) * 5 + (0,))
    )
    out = np.asarray(f(keys, sx, sy, qx, qy, jnp.asarray(cfg.lrs))).mean(axis=1)
    # Need at least two updates so that A can be interrupted part-way.
    out[:, 0] = -1.0
    li, ui = np.unravel_index(np.argmax(out), out.shape)
    bar.update(1)
    return float(cfg.lrs[li]), int(ui + 1), float(out[li, ui])


def run_interrupt(cfg: InterruptConfig, *, progress: bool = True) -> dict:
    """Run the interruption benchmark and return the `results.json` payload.

    **Returns:**

    A dict with `config`, `versions`, `device`, `seed`, `results` (a list of
    `{method, phase, task, mean, ci95, n}`) and `details` (selected hyperparameters,
    timing).
    """
    t0 = time.perf_counter()
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    hidden = cfg.hidden if cfg.hidden is not None else (128 if ds.x_train.shape[1] <= 256 else 256)
    sizes = (ds.x_train.shape[1], hidden, 10)
    key = jax.random.key(cfg.seed)
    k_tune, k_a, k_b, k_init = jax.random.split(key, 4)
    methods = cfg.methods or METHODS
    results, timing, selected = [], {}, {}
    with tqdm(total=3 + len(methods), disable=not progress, leave=False) as bar:
        bar.set_description("tuning PC and backprop on validation episodes")
        for rule in ("pc", "bp"):
            lr, n, val = _tune(rule, cfg, ds, sizes, jax.random.fold_in(k_tune, rule == "pc"), bar)
            selected[rule] = {"lr": lr, "updates": n, "val_acc": val}
        common = dict(ways=5, shots=cfg.shots, queries=cfg.queries)
        ep_a = sample_episodes(
            k_a, ds.x_test, ds.y_test, num=cfg.episodes, classes=TASK_A, **common
        )
        ep_b = sample_episodes(
            k_b, ds.x_test, ds.y_test, num=cfg.episodes, classes=TASK_B, **common
        )
        data = (*original_labels(ep_a), *original_labels(ep_b))
        keys = jax.random.split(k_init, cfg.episodes)
        # The store's tolerance and start (stored or fresh states) are chosen on
        # validation episodes from the training split, by final accuracy on A and B.
        bar.set_description("choosing the store's tolerance and start on validation episodes")
        lr, n = selected["pc"]["lr"], selected["pc"]["updates"]
        k = max(1, min(n - 1, int(round(cfg.interrupt_fraction * n))))
        val_a = sample_episodes(
            jax.random.fold_in(k_a, 1),
            ds.x_train,
            ds.y_train,
            num=cfg.val_episodes,
            classes=TASK_A,
            **common,
        )
        val_b = sample_episodes(
            jax.random.fold_in(k_b, 1),
            ds.x_train,
            ds.y_train,
            num=cfg.val_episodes,
            classes=TASK_B,
            **common,
        )
        val_data = (*original_labels(val_a), *original_labels(val_b))
        val_keys = jax.random.split(jax.random.fold_in(k_init, 1), cfg.val_episodes)
        scores = {}
        for fresh in (False, True):

            def one_val(key, *episode, tol, fresh=fresh):
                return _episode(
                    "pc_store", key, *episode, tol, fresh, sizes=sizes, lr=lr, n=n, k=k, cfg=cfg
                )

            f = jax.jit(
                jax.vmap(lambda tol: jax.vmap(lambda *a: one_val(*a, tol=tol))(val_keys, *val_data))
            )
            out = np.asarray(f(jnp.asarray(cfg.tols)))  # (tols, episodes, phases, tasks)
            for i, tol in enumerate(cfg.tols):
                scores[(fresh, tol)] = float(out[i, :, 2, :].mean())
        fresh_best, tol_best = max(scores, key=scores.get)
        selected["store"] = {
            "fresh": fresh_best,
            "tol": tol_best,
            "val_final_acc": scores[(fresh_best, tol_best)],
            "candidates": [
                {"fresh": f, "tol": t, "val_final_acc": v} for (f, t), v in scores.items()
            ],
        }
        bar.update(1)
        for method in methods:
            bar.set_description(method)
            rule = "bp" if method.startswith("backprop") else "pc"
            lr, n = selected[rule]["lr"], selected[rule]["updates"]
            k = max(1, min(n - 1, int(round(cfg.interrupt_fraction * n))))

            def one(key, *episode, method=method, lr=lr, n=n, k=k):
                return _episode(
                    method,
                    key,
                    *episode,
                    tol_best,
                    fresh_best,
                    sizes=sizes,
                    lr=lr,
                    n=n,
                    k=k,
                    cfg=cfg,
                )

            t1 = time.perf_counter()
            compiled = jax.jit(jax.vmap(one)).lower(keys, *data).compile()
            t2 = time.perf_counter()
            out = np.asarray(jax.block_until_ready(compiled(keys, *data)))  # (episodes, 3, 2)
            t3 = time.perf_counter()
            timing[method] = {
                "compile_s": t2 - t1,
                "run_s": t3 - t2,
                "episodes_per_s": cfg.episodes / (t3 - t2),
                "updates": n,
                "interrupted_at": k,
            }
            for p, phase in enumerate(PHASES):
                for t, task in enumerate(("A", "B")):
                    mean, ci, count = mean_ci95(out[:, p, t])
                    results.append(
                        {
                            "method": method,
                            "phase": phase,
                            "task": task,
                            "mean": mean,
                            "ci95": ci,
                            "n": count,
                        }
                    )
            bar.update(1)
    details = {"selected": selected, "timing": timing, "wall_s": time.perf_counter() - t0}
    return payload(asdict(cfg), cfg.seed, results, details)
