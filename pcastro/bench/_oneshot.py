"""The main job: one-shot digit learning, PC beside backprop and non-parametric baselines."""

import time
from dataclasses import asdict, dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .._inference import Euler
from .._learning import train_step
from .._predict import accuracy
from ..baselines import backprop_step, nearest_class_mean, pixel_nearest_neighbour
from ..data import load_dataset, sample_episodes
from ._learners import (
    astrocyte_learning,
    learning_curve,
    make_model,
    params_of,
    sequential_learning,
)
from ._report import original_labels, payload
from ._stats import mean_ci95

BASE = (0, 1, 2, 3, 4)
NOVEL = (5, 6, 7, 8, 9)


@dataclass(frozen=True)
class OneShotConfig:
    """Settings of a one-shot run (all recorded in `results.json`)."""

    dataset: str = "digits"
    protocol: str = "scratch"
    ways: int = 10
    shots: int = 1
    queries: int = 15
    episodes: int = 20
    val_episodes: int = 10
    seed: int = 0
    hidden: int | None = None
    inference_steps: int = 20
    dt: float = 0.1
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)
    max_updates: int = 100
    updates_per_example: tuple[int, ...] = (1, 3, 10, 30)
    pretrain_epochs: int = 10
    replay_per_class: int = 10
    astro_rounds: tuple[int, ...] = (1, 3, 10, 30)
    data_dir: str | None = None
    methods: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.protocol not in ("scratch", "transfer"):
            raise ValueError(
                f"Unknown protocol {self.protocol!r}; use 'scratch' (N-way K-shot from "
                "nothing) or 'transfer' (pretrain on digits 0-4, learn 5-9 from one example)."
            )
        for name in ("ways", "shots", "episodes", "val_episodes", "max_updates", "queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        unknown = set(self.methods) - {"pc", "pc_astro", "backprop", "backprop_replay"}
        if unknown:
            raise ValueError(
                f"Unknown methods {sorted(unknown)}; the trained methods are pc, pc_astro, "
                "backprop and backprop_replay (transfer only); the baselines always run."
            )
        if self.protocol == "transfer" and self.ways != 10:
            raise ValueError(
                "The transfer protocol is 10-way by construction (base digits 0-4 plus novel "
                f"digits 5-9); drop `--ways` or pass `--ways 10` (got {self.ways})."
            )


def _hidden(cfg: OneShotConfig, features: int) -> int:
    return cfg.hidden if cfg.hidden is not None else (128 if features <= 256 else 256)


def _summaries(method: str, metric: str, values) -> dict:
    mean, ci, n = mean_ci95(values)
    return {"method": method, "metric": metric, "mean": mean, "ci95": ci, "n": n}


def _timed(fn, *args):
    """Compile apart, then run: returns (output, compile_s, run_s)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, t1 - t0, time.perf_counter() - t1


def _scratch(cfg: OneShotConfig, ds, bar) -> tuple[list[dict], dict]:
    key = jax.random.key(cfg.seed)
    k_val, k_test, k_init = jax.random.split(key, 3)
    common = dict(ways=cfg.ways, shots=cfg.shots, queries=cfg.queries)
    val = sample_episodes(k_val, ds.x_train, ds.y_train, num=cfg.val_episodes, **common)
    test = sample_episodes(k_test, ds.x_test, ds.y_test, num=cfg.episodes, **common)
    sizes = (ds.x_train.shape[1], _hidden(cfg, ds.x_train.shape[1]), cfg.ways)
    results, chosen, timing = [], {}, {}
    lrs = jnp.asarray(cfg.lrs)
    for method in ("pc", "bp"):
        if cfg.methods and ("pc" if method == "pc" else "backprop") not in cfg.methods:
            continue

        def curve(k, sx, sy, qx, qy, lr, method=method):
            return learning_curve(
                method,
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

        per_episode = jax.vmap(curve, in_axes=(0, 0, 0, 0, 0, None))
        val_keys = jax.random.split(jax.random.fold_in(k_init, 1), cfg.val_episodes)
        over_lrs = jax.vmap(per_episode, in_axes=(None, None, None, None, None, 0))
        bar.set_description(f"{method}: tuning on validation episodes")
        val_curves, _, _ = _timed(
            over_lrs, val_keys, val.support_x, val.support_y, val.query_x, val.query_y, lrs
        )
        bar.update(1)
        mean_val = np.asarray(val_curves).mean(axis=1)  # (lrs, updates)
        li, ui = np.unravel_index(np.argmax(mean_val), mean_val.shape)
        chosen[method] = {
            "lr": float(cfg.lrs[li]),
            "updates": int(ui + 1),
            "val_acc": float(mean_val[li, ui]),
        }
        bar.set_description(f"{method}: test episodes")
        test_keys = jax.random.split(jax.random.fold_in(k_init, 2), cfg.episodes)
        test_curves, compile_s, run_s = _timed(
            per_episode,
            test_keys,
            test.support_x,
            test.support_y,
            test.query_x,
            test.query_y,
            jnp.asarray(cfg.lrs[li]),
        )
        bar.update(1)
        acc = np.asarray(test_curves)[:, ui]
        name = "pc" if method == "pc" else "backprop"
        results.append(_summaries(name, "accuracy", acc))
        timing[name] = {
            "compile_s": compile_s,
            "run_s": run_s,
            "episodes_per_s": cfg.episodes / run_s,
        }
    if not cfg.methods or "pc_astro" in cfg.methods:
        bar.set_description("pc_astro: tuning on validation episodes")

        def astro_acc(k, sx, sy, qx, qy, lr, rounds):
            net = astrocyte_learning(
                make_model(k, sizes),
                sx,
                sy,
                lr,
                rounds=rounds,
                inference_steps=cfg.inference_steps,
                dt=cfg.dt,
            )
            return accuracy(net, qx, qy)

        val_keys = jax.random.split(jax.random.fold_in(k_init, 1), cfg.val_episodes)
        best = (-1.0, None, None)
        for rounds in cfg.astro_rounds:
            f = jax.vmap(
                jax.vmap(
                    lambda *a, rounds=rounds: astro_acc(*a, rounds), in_axes=(0, 0, 0, 0, 0, None)
                ),
                in_axes=(None,) * 5 + (0,),
            )
            out, _, _ = _timed(
                f, val_keys, val.support_x, val.support_y, val.query_x, val.query_y, lrs
            )
            score = np.asarray(out).mean(axis=1)
            li = int(np.argmax(score))
            if score[li] > best[0]:
                best = (float(score[li]), float(cfg.lrs[li]), rounds)
        bar.update(1)
        chosen["pc_astro"] = {"lr": best[1], "rounds": best[2], "val_acc": best[0]}
        bar.set_description("pc_astro: test episodes")
        test_keys = jax.random.split(jax.random.fold_in(k_init, 2), cfg.episodes)
        f = jax.vmap(lambda *a: astro_acc(*a, best[2]), in_axes=(0, 0, 0, 0, 0, None))
        acc, compile_s, run_s = _timed(
            f,
            test_keys,
            test.support_x,
            test.support_y,
            test.query_x,
            test.query_y,
            jnp.asarray(best[1]),
        )
        results.append(_summaries("pc_astro", "accuracy", np.asarray(acc)))
        timing["pc_astro"] = {
            "compile_s": compile_s,
            "run_s": run_s,
            "episodes_per_s": cfg.episodes / run_s,
        }
        bar.update(1)
    for name, fn in (("pixel_nn", pixel_nearest_neighbour), ("class_mean", None)):
        if fn is None:

            def fn(sx, sy, qx):
                return nearest_class_mean(sx, sy, qx, num_classes=cfg.ways)

        pred, compile_s, run_s = _timed(jax.vmap(fn), test.support_x, test.support_y, test.query_x)
        acc = np.asarray(jnp.mean(pred == test.query_y, axis=1))
        results.append(_summaries(name, "accuracy", acc))
        timing[name] = {
            "compile_s": compile_s,
            "run_s": run_s,
            "episodes_per_s": cfg.episodes / run_s,
        }
    bar.update(1)
    return results, {"selected": chosen, "timing": timing}


def _pretrain(method, net, x, y, *, epochs, seed, cfg, batch=64):
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params_of(net))

    @eqx.filter_jit
    def step(net, opt_state, bx, by):
        if method == "pc":
            net, opt_state, _ = train_step(
                net,
                opt_state,
                bx,
                by,
                optimizer=optimizer,
                solver=Euler(dt=cfg.dt),
                steps=cfg.inference_steps,
            )
        else:
            net, opt_state, _ = backprop_step(net, opt_state, bx, by, optimizer=optimizer)
        return net, opt_state

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for b in range(0, len(perm) - batch + 1, batch):
            idx = perm[b : b + batch]
            net, opt_state = step(net, opt_state, x[idx], y[idx])
    return net


def _transfer(cfg: OneShotConfig, ds, bar) -> tuple[list[dict], dict]:
    key = jax.random.key(cfg.seed)
    k_val, k_test, k_init, k_split = jax.random.split(key, 4)
    base_tr = np.isin(ds.y_train, BASE)
    xb, yb = ds.x_train[base_tr], ds.y_train[base_tr]
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(xb))
    n_val = len(xb) // 5
    xb_val, yb_val = xb[perm[:n_val]], yb[perm[:n_val]]
    xb_fit, yb_fit = xb[perm[n_val:]], yb[perm[n_val:]]
    base_te = np.isin(ds.y_test, BASE)
    xb_test, yb_test = ds.x_test[base_te], ds.y_test[base_te]
    sizes = (ds.x_train.shape[1], _hidden(cfg, ds.x_train.shape[1]), 10)
    net0 = make_model(k_init, sizes)
    bar.set_description("pretraining on base digits 0-4 (PC and backprop)")
    t0 = time.perf_counter()
    pretrained = {
        "pc": _pretrain(
            "pc", net0, xb_fit, yb_fit, epochs=cfg.pretrain_epochs, seed=cfg.seed, cfg=cfg
        ),
        "bp": _pretrain(
            "bp", net0, xb_fit, yb_fit, epochs=cfg.pretrain_epochs, seed=cfg.seed, cfg=cfg
        ),
    }
    pretrain_s = time.perf_counter() - t0
    bar.update(1)
    # A raw-image replay buffer: `replay_per_class` base training images per class.
    buf_idx = np.concatenate([np.flatnonzero(yb_fit == c)[: cfg.replay_per_class] for c in BASE])
    replay_x, replay_y = jnp.asarray(xb_fit[buf_idx]), jnp.asarray(yb_fit[buf_idx])
    common = dict(ways=len(NOVEL), shots=cfg.shots, queries=cfg.queries, classes=NOVEL)
    val = sample_episodes(k_val, ds.x_train, ds.y_train, num=cfg.val_episodes, **common)
    test = sample_episodes(k_test, ds.x_test, ds.y_test, num=cfg.episodes, **common)

    # Episode labels are 0..4 in the order of `classes`; learn the original digits.
    val_sets = original_labels(val) + (jnp.asarray(xb_val), jnp.asarray(yb_val))
    test_sets = original_labels(test) + (jnp.asarray(xb_test), jnp.asarray(yb_test))

    def metrics(net, qx, qy, bx, by):
        novel = accuracy(net, qx, qy)
        base = accuracy(net, bx, by)
        return jnp.stack([novel, base, 0.5 * (novel + base)])

    methods = {
        "pc": ("pc", False),
        "pc_astro": ("astro", False),
        "backprop": ("bp", False),
        "backprop_replay": ("bp", True),
    }
    results, chosen, timing = [], {}, {}
    for name, (rule, replay) in methods.items():
        if cfg.methods and name not in cfg.methods:
            continue
        net = pretrained["pc" if rule == "astro" else rule]

        def run(k, sx, sy, qx, qy, bx, by, lr, upe, rule=rule, replay=replay, net=net):
            if rule == "astro":
                # `upe` is the number of consolidation rounds here.
                learned = astrocyte_learning(
                    net, sx, sy, lr, rounds=upe, inference_steps=cfg.inference_steps, dt=cfg.dt
                )
                return metrics(learned, qx, qy, bx, by)
            learned = sequential_learning(
                rule,
                net,
                sx,
                sy,
                lr,
                updates_per_example=upe,
                inference_steps=cfg.inference_steps,
                dt=cfg.dt,
                replay_x=replay_x if replay else None,
                replay_y=replay_y if replay else None,
                replay_key=k,
                replay_batch=10 if replay else 0,
            )
            return metrics(learned, qx, qy, bx, by)

        best = (-1.0, None, None)
        bar.set_description(f"{name}: tuning on validation episodes")
        grid = cfg.astro_rounds if rule == "astro" else cfg.updates_per_example
        for upe in grid:
            f = jax.vmap(
                jax.vmap(
                    lambda k, sx, sy, qx, qy, bx, by, lr, upe=upe: run(
                        k, sx, sy, qx, qy, bx, by, lr, upe
                    ),
                    in_axes=(0, 0, 0, 0, 0, None, None, None),
                ),
                in_axes=(None, None, None, None, None, None, None, 0),
            )
            keys = jax.random.split(jax.random.fold_in(k_init, 3), cfg.val_episodes)
            out, _, _ = _timed(f, keys, *val_sets, jnp.asarray(cfg.lrs))
            score = np.asarray(out)[:, :, 2].mean(axis=1)
            li = int(np.argmax(score))
            if score[li] > best[0]:
                best = (float(score[li]), float(cfg.lrs[li]), upe)
        bar.update(1)
        count = "rounds" if rule == "astro" else "updates_per_example"
        chosen[name] = {"lr": best[1], count: best[2], "val_ten_way": best[0]}
        bar.set_description(f"{name}: test episodes")
        upe = best[2]
        f = jax.vmap(
            lambda k, sx, sy, qx, qy, bx, by, lr, upe=upe: run(k, sx, sy, qx, qy, bx, by, lr, upe),
            in_axes=(0, 0, 0, 0, 0, None, None, None),
        )
        keys = jax.random.split(jax.random.fold_in(k_init, 4), cfg.episodes)
        out, compile_s, run_s = _timed(f, keys, *test_sets, jnp.asarray(best[1]))
        out = np.asarray(out)
        for j, metric in enumerate(("novel_accuracy", "base_retention", "ten_way_accuracy")):
            results.append(_summaries(name, metric, out[:, j]))
        timing[name] = {
            "compile_s": compile_s,
            "run_s": run_s,
            "episodes_per_s": cfg.episodes / run_s,
        }
        bar.update(1)
    # Non-parametric baselines: base training images plus the one-shot novel support.
    for name, fn in (("pixel_nn", pixel_nearest_neighbour), ("class_mean", None)):
        if fn is None:

            def fn(sx, sy, qx):
                return nearest_class_mean(sx, sy, qx, num_classes=10)

        def run_np(sx, sy, qx, qy, bx, by, fn=fn):
            support_x = jnp.concatenate([jnp.asarray(xb_fit), sx])
            support_y = jnp.concatenate([jnp.asarray(yb_fit), sy])
            novel = jnp.mean(fn(support_x, support_y, qx) == qy)
            base = jnp.mean(fn(support_x, support_y, bx) == by)
            return jnp.stack([novel, base, 0.5 * (novel + base)])

        # Episodes one after another (`lax.map`): with a large base set, the distance
        # matrices of all episodes at once would not fit in memory.

        def over_episodes(sx, sy, qx, qy, bx, by, run_np=run_np):
            return jax.lax.map(lambda e: run_np(e[0], e[1], e[2], e[3], bx, by), (sx, sy, qx, qy))

        out, compile_s, run_s = _timed(over_episodes, *test_sets)
        out = np.asarray(out)
        for j, metric in enumerate(("novel_accuracy", "base_retention", "ten_way_accuracy")):
            results.append(_summaries(name, metric, out[:, j]))
        timing[name] = {
            "compile_s": compile_s,
            "run_s": run_s,
            "episodes_per_s": cfg.episodes / run_s,
        }
    bar.update(1)
    return results, {"selected": chosen, "timing": timing, "pretrain_s": pretrain_s}


def run_oneshot(cfg: OneShotConfig, *, progress: bool = True) -> dict:
    """Run the one-shot benchmark and return the `results.json` payload.

    **Arguments:**

    - `cfg`: a [`pcastro.bench.OneShotConfig`][].
    - `progress`: show a progress bar.

    **Returns:**

    A dict with `config`, `versions`, `device`, `seed`, `results` (a list of
    `{method, metric, mean, ci95, n}`) and `details` (selected hyperparameters, timing).
    """
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    total = 7 if cfg.protocol == "scratch" else 10
    t0 = time.perf_counter()
    with tqdm(total=total, disable=not progress, leave=False) as bar:
        if cfg.protocol == "scratch":
            results, details = _scratch(cfg, ds, bar)
        else:
            results, details = _transfer(cfg, ds, bar)
    details["wall_s"] = time.perf_counter() - t0
    return payload(asdict(cfg), cfg.seed, results, details)
