"""Convolutional networks: PC vs backprop on the same `pcastro.convnet` modules, full MNIST.

    PCASTRO_DATA=/path/to/data python benchmarks/conv.py      # the README table (15 min, 2 CPUs)
    python benchmarks/conv.py --quick                          # smoke run (~2 min)

The network is `pcastro.convnet((1, 28, 28))`: conv(1->32, 3x3) + ReLU + 2x2 max-pool ->
conv(32->64, 3x3) + ReLU + 2x2 max-pool -> flatten -> linear -> 10, a cross-entropy top
node, one PC node per block (a VGG-style network in the layout of the pcx benchmark's
VGG-5, at MNIST scale). Two methods train the very same modules from the same initial
weights (a seed's key), on the same mini-batches in the same order, with Adam:

- `pc`: `pcastro.train_step` (Euler inference on the states, `steps` steps, unrolled,
  then one local weight update);
- `backprop`: `pcastro.baselines.backprop_step` (the top node's energy at the feedforward
  pass, i.e. the cross-entropy).

10% of the training images (per class) are held out for validation; the learning rate
(both methods) and PC's inference steps (and step size: one value by default) are chosen
there, on one validation seed, over `--val-iterations` iterations (never on the test
images). Then
each of `--seeds` seeds trains both methods for `--iterations` iterations on the other
90%; the 10,000 official test images are scored every `--eval-every` iterations
(feedforward prediction). Reported: test accuracy (mean ± 95% CI over seeds), the
paired PC − backprop difference, the test accuracy against iterations and against
training wall time (compile apart), and the median time of one training step.
Without the IDX files of full MNIST (`--data-dir` or `PCASTRO_DATA`) the run falls back
to the embedded mnist5k and says so, in the output and in the record.
"""

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import pcastro as pc
from pcastro.bench import BackpropRule, PCRule, select_on_validation
from pcastro.bench._continual import split_validation
from pcastro.bench._records import result_row
from pcastro.bench._report import payload, save_json
from pcastro.bench._stats import mean_ci95

RESULTS = Path(__file__).parent / "results"

# Pinchetti et al., ICLR 2025 ("Benchmarking predictive coding networks -- made simple"),
# the pcx benchmark. Their table's numbers could not be read against the paper from this
# machine (see benchmarks/README.md); the protocol below was read from their released
# scripts (github.com/liukidar/pcx, commit 23ca0f9, examples/s4_1_discriminative_mode/).
PUBLISHED = {
    "source": "Pinchetti et al., 'Benchmarking Predictive Coding Networks -- Made Simple', "
    "ICLR 2025 (arXiv:2407.01163), Table 1; scripts: github.com/liukidar/pcx commit "
    "23ca0f9, examples/s4_1_discriminative_mode/",
    "numbers": "not verified: the paper's table could not be read from this machine; no "
    "accuracy is quoted here",
    "rows": [
        {
            "network": "VGG-5",
            "datasets": ["CIFAR-10", "CIFAR-100", "Tiny ImageNet"],
            "architecture": "4 blocks conv3x3 (3->128->256->512->512, padding 1) + GELU + "
            "2x2 max-pool, one PC node per block, linear 2048->classes, cross-entropy or "
            "squared-error top",
            "accuracy": "not verified",
        },
        {
            "network": "VGG-7",
            "datasets": ["CIFAR-100", "Tiny ImageNet"],
            "architecture": "6 conv3x3 blocks (128, 128, 256, 256, 512, 512; pooling after "
            "blocks 1, 3, 5), linear 512->classes",
            "accuracy": "not verified",
        },
        {
            "network": "MLP",
            "datasets": ["MNIST", "Fashion-MNIST"],
            "architecture": "784-128-128-128-10 (4 linear layers), GELU, 25 epochs",
            "accuracy": "not verified",
        },
    ],
    "protocol_differences": [
        "dataset: they report no convolutional network on MNIST; their conv rows are "
        "CIFAR-10/100 and Tiny ImageNet (with random crops and flips), ours is MNIST",
        "architecture: their VGG-5 has 4 conv blocks of 128-512 channels and GELU; ours "
        "2 blocks of 32 and 64 channels and ReLU",
        "training: they train 50 epochs (VGG-5) with AdamW, weight decay and a warm-up "
        "cosine learning-rate schedule, and SGD with momentum on the states (T = 5-8); "
        "we train a few hundred iterations with constant-rate Adam and Euler steps",
        "selection: their hyperparameters come from a search whose split is not stated in "
        "the scripts, and their scripts record the best test accuracy over epochs (seeds "
        "0-6; an 'avg5' field drops the two worst seeds); we select on a validation split "
        "and report the test accuracy after the last iteration, over all seeds",
    ],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    floats = lambda s: tuple(float(v) for v in s.split(","))  # noqa: E731
    ints = lambda s: tuple(int(v) for v in s.split(","))  # noqa: E731
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--val-iterations", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=ints, default=(32, 64))
    parser.add_argument("--lrs", type=floats, default=(1e-3, 3e-3, 1e-2), help="both methods")
    parser.add_argument("--pc-steps", type=ints, default=(3, 8), help="inference steps (grid)")
    parser.add_argument("--pc-dts", type=floats, default=(0.1,), help="Euler step sizes (grid)")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--val-seed", type=int, default=1000)
    parser.add_argument("--timing-repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "conv_mnist")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 seeds, 40 iterations, no grid"
    )
    parser.add_argument(
        "--select-only", action="store_true", help="stop after the validation selection"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.iterations, args.val_iterations, args.eval_every = 2, 40, 20, 20
        args.timing_repeats = 3
        args.lrs, args.pc_steps, args.pc_dts = (1e-3,), (3,), (0.1,)
        if args.out == RESULTS / "conv_mnist":
            args.out = Path("runs") / "conv_quick"  # git-ignored
    return args


# ---- data -------------------------------------------------------------------------------


def load(data_dir) -> dict:
    """Full MNIST (train split into fit and validation images), or the embedded mnist5k."""
    note = None
    try:
        ds = pc.data.load_dataset("mnist", data_dir=data_dir)
    except FileNotFoundError as err:
        note = f"full MNIST not found, fell back to the embedded mnist5k: {err}"
        print(f"NOTE: {note}", flush=True)
        ds = pc.data.load_dataset("mnist5k")
    return {"name": ds.name, "fallback": note, "dataset": ds}


def split(ds, fraction: float) -> dict:
    fit, val = split_validation(ds.y_train, fraction)
    # Standardised with the fit images' statistics (one scalar mean and std).
    mean, std = ds.x_train[fit].mean(), ds.x_train[fit].std()

    def images(x):
        return jnp.asarray(((x - mean) / std).reshape(-1, 1, *ds.image_shape))

    return {
        "fit": (images(ds.x_train[fit]), jnp.asarray(ds.y_train[fit])),
        "val": (images(ds.x_train[val]), jnp.asarray(ds.y_train[val])),
        "test": (images(ds.x_test), jnp.asarray(ds.y_test)),
    }


def batches(n: int, iterations: int, batch: int, seed: int) -> np.ndarray:
    """`(iterations, batch)` indices of reshuffled epochs: one order per seed, shared by
    every method."""
    rng = np.random.default_rng(seed)
    epochs = -(-iterations * batch // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return order[: iterations * batch].reshape(iterations, batch)


# ---- one training run -------------------------------------------------------------------


def make_rule(method: str, hp: dict, *, unroll: bool = True):
    if method == "pc":
        return PCRule(steps=int(hp["steps"]), solver=pc.Euler(dt=float(hp["dt"])), unroll=unroll)
    return BackpropRule()


# The learning rate is an input of the compiled step (Adam's state carries it), so each
# configuration compiles once and every learning rate and seed reuses it.
OPTIMIZER = optax.inject_hyperparams(optax.adam)
_COMPILED: dict = {}
_accuracy = eqx.filter_jit(pc.accuracy)


def compiled_step(method, hp, params, static, opt_state, x, y):
    """The compiled training step of `method` at `hp` (without its learning rate), and
    its compile time (ahead of time, so apart from every timed step)."""
    key = (method, *(hp[k] for k in sorted(hp) if k != "lr"))
    if key not in _COMPILED:
        rule = make_rule(method, hp)
        optimizer = OPTIMIZER(learning_rate=0.0)  # the rate itself lives in `opt_state`

        def step(params, opt_state, x, y):
            net, opt_state, _ = rule.update(
                eqx.combine(params, static), opt_state, x, y, optimizer=optimizer, throw=False
            )
            return eqx.filter(net, eqx.is_inexact_array), opt_state

        t0 = time.perf_counter()
        compiled = jax.jit(step).lower(params, opt_state, x, y).compile()
        _COMPILED[key] = (compiled, time.perf_counter() - t0)
    return _COMPILED[key]


def train(method, hp, seed, data, *, args, score_on: str, iterations: int) -> dict:
    """Train one network; score it on `score_on` images every `eval_every` iterations.

    Compile time is measured apart (ahead-of-time compilation); every step is timed with
    the device synchronised, and evaluation time is not counted as training time.
    """
    shape = data["fit"][0].shape[1:]
    net = pc.convnet(shape, channels=args.channels, key=jax.random.key(seed))
    params, static = eqx.partition(net, eqx.is_inexact_array)
    opt_state = OPTIMIZER(learning_rate=hp["lr"]).init(params)
    x_fit, y_fit = data["fit"]
    x_eval, y_eval = data[score_on]
    order = batches(len(y_fit), iterations, args.batch, seed)
    compiled, compile_s = compiled_step(
        method, hp, params, static, opt_state, x_fit[order[0]], y_fit[order[0]]
    )

    def score(params):
        return float(_accuracy(eqx.combine(params, static), x_eval, y_eval))

    curve = {"iteration": [0], "accuracy": [score(params)], "train_s": [0.0]}
    step_s = []
    for i, idx in enumerate(order, start=1):
        t0 = time.perf_counter()
        params, opt_state = jax.block_until_ready(
            compiled(params, opt_state, x_fit[idx], y_fit[idx])
        )
        step_s.append(time.perf_counter() - t0)
        if i % args.eval_every == 0 or i == iterations:
            curve["iteration"].append(i)
            curve["accuracy"].append(score(params))
            curve["train_s"].append(float(np.sum(step_s)))
    return {
        "method": method,
        "seed": seed,
        "hp": hp,
        "curve": curve,
        "final": curve["accuracy"][-1],
        "compile_s": compile_s,
        "step_ms": 1e3 * float(np.median(step_s)),
        "train_s": float(np.sum(step_s)),
    }


def time_steps(chosen: dict, data, *, args) -> dict:
    """Median time of one training step at the selected settings, round-robin over PC
    (inference unrolled, as trained), PC with the inference loop kept as a loop, and
    backprop, on one fixed batch; compile time apart."""
    x_fit, y_fit = data["fit"]
    x, y = x_fit[: args.batch], y_fit[: args.batch]
    net = pc.convnet(x_fit.shape[1:], channels=args.channels, key=jax.random.key(0))
    params, static = eqx.partition(net, eqx.is_inexact_array)
    variants = {
        "pc": make_rule("pc", chosen["pc"]),
        "pc_loop": make_rule("pc", chosen["pc"], unroll=False),
        "backprop": make_rule("backprop", chosen["backprop"]),
    }
    compiled, out = {}, {}
    for name, rule in variants.items():
        optimizer = OPTIMIZER(
            learning_rate=chosen["backprop" if name == "backprop" else "pc"]["lr"]
        )
        opt_state = optimizer.init(params)

        def step(params, opt_state, rule=rule, optimizer=optimizer):
            net, opt_state, _ = rule.update(
                eqx.combine(params, static), opt_state, x, y, optimizer=optimizer, throw=False
            )
            return eqx.filter(net, eqx.is_inexact_array), opt_state

        t0 = time.perf_counter()
        compiled[name] = (jax.jit(step).lower(params, opt_state).compile(), opt_state)
        out[name] = {"compile_s": time.perf_counter() - t0, "step_ms": []}
    for _ in range(args.timing_repeats):
        for name, (fn, opt_state) in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params, opt_state))
            out[name]["step_ms"].append(1e3 * (time.perf_counter() - t0))
    for rec in out.values():
        rec["median_ms"] = float(np.median(rec["step_ms"]))
    return out


# ---- selection on validation ------------------------------------------------------------


def grids(args) -> dict[str, dict[str, tuple]]:
    return {
        "pc": {"lr": args.lrs, "steps": args.pc_steps, "dt": args.pc_dts},
        "backprop": {"lr": args.lrs},
    }


def select(data, args) -> tuple[dict, dict]:
    """Per method, the grid point with the best validation accuracy after
    `val_iterations` iterations on the validation seed."""
    chosen, table = {}, {}
    for method, grid in grids(args).items():
        scores, rows = [], []
        for values in itertools.product(*grid.values()):
            hp = dict(zip(grid, values))
            run = train(
                method,
                hp,
                args.val_seed,
                data,
                args=args,
                score_on="val",
                iterations=args.val_iterations,
            )
            scores.append(run["final"])
            rows.append({**hp, "val_accuracy": run["final"], "step_ms": run["step_ms"]})
            print(f"  [val] {method} {hp}: {run['final']:.4f} ({run['step_ms']:.0f} ms/step)")
        shape = tuple(len(v) for v in grid.values())
        chosen[method], _ = select_on_validation(np.reshape(scores, shape), grid)
        table[method] = rows
    return chosen, table


# ---- report ------------------------------------------------------------------------------


def summarise(runs: list[dict], seeds) -> tuple[list[dict], dict]:
    by = {m: [r for s in seeds for r in runs if r["method"] == m and r["seed"] == s] for m in
          ("pc", "backprop")}  # fmt: skip
    rows = []
    for method, rs in by.items():
        for metric in ("final", "step_ms", "train_s"):
            name = "test_accuracy" if metric == "final" else metric
            rows.append(result_row(method, [r[metric] for r in rs], metric=name))
    diff = np.array([p["final"] - b["final"] for p, b in zip(by["pc"], by["backprop"])])
    mean, ci, n = mean_ci95(diff)
    curves = np.array([[p["curve"]["accuracy"], b["curve"]["accuracy"]] for p, b in
                       zip(by["pc"], by["backprop"])])  # fmt: skip
    per_eval = [mean_ci95(d) for d in (curves[:, 0] - curves[:, 1]).T]
    paired = {
        "pc_minus_backprop_test_accuracy": {
            "mean": mean,
            "ci95": ci,
            "n": n,
            "values": [round(float(v), 6) for v in diff],
        },
        "per_evaluation": {
            "iteration": by["pc"][0]["curve"]["iteration"],
            "mean": [m for m, _, _ in per_eval],
            "ci95": [c for _, c, _ in per_eval],
        },
        "step_time_ratio_pc_over_backprop": float(
            np.median([p["step_ms"] / b["step_ms"] for p, b in zip(by["pc"], by["backprop"])])
        ),
    }
    return rows, paired


def plot(path: Path, runs: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pcastro.bench._report import _save_figure

    fig, (ax_it, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
    for method, colour in (("pc", "#3b75af"), ("backprop", "#9a9a9a")):
        rs = [r for r in runs if r["method"] == method]
        # From the first evaluation after iteration 0 (at 0 every method is at chance).
        acc = np.array([r["curve"]["accuracy"][1:] for r in rs])
        secs = np.mean([r["curve"]["train_s"][1:] for r in rs], axis=0)
        its = rs[0]["curve"]["iteration"][1:]
        stats = [mean_ci95(col) for col in acc.T]
        mean = np.array([m for m, _, _ in stats])
        ci = np.array([c for _, c, _ in stats])
        label = f"{method} ({len(rs)} seeds)"
        for ax, x in ((ax_it, its), (ax_t, secs)):
            ax.plot(x, mean, color=colour, marker="o", ms=3, label=label)
            ax.fill_between(x, mean - ci, mean + ci, color=colour, alpha=0.25)
    ax_it.set_xlabel("training iteration (one mini-batch each)")
    ax_t.set_xlabel("training wall time, s (mean over seeds; no compile, no evaluation)")
    lowest = min(np.mean([r["curve"]["accuracy"][1] for r in runs if r["method"] == m])
                 for m in ("pc", "backprop"))  # fmt: skip
    for ax in (ax_it, ax_t):
        ax.set_ylabel("test accuracy (mean ± 95% CI)")
        ax.set_ylim(max(0.0, lowest - 0.02), 1.0)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()
    loaded = load(args.data_dir)
    data = split(loaded["dataset"], args.val_fraction)
    print(
        f"{loaded['name']}: {len(data['fit'][1])} fit, {len(data['val'][1])} validation, "
        f"{len(data['test'][1])} test images",
        flush=True,
    )
    t0 = time.perf_counter()
    chosen, table = select(data, args)
    select_s = time.perf_counter() - t0
    print(f"selected on validation: {chosen} ({select_s:.0f} s)", flush=True)
    if args.select_only:
        return 0
    seeds = list(range(args.seeds))
    runs = []
    for seed in seeds:
        for method in ("pc", "backprop"):  # interleaved, so both see the same machine load
            run = train(
                method,
                chosen[method],
                seed,
                data,
                args=args,
                score_on="test",
                iterations=args.iterations,
            )
            runs.append(run)
            print(
                f"  seed {seed} {method}: test {run['final']:.4f}, {run['step_ms']:.0f} ms/step, "
                f"compile {run['compile_s']:.1f} s",
                flush=True,
            )
    rows, paired = summarise(runs, seeds)
    timing = time_steps(chosen, data, args=args)
    print(
        "  step time (median of "
        f"{args.timing_repeats}, round-robin): "
        + ", ".join(f"{k} {v['median_ms']:.0f} ms" for k, v in timing.items()),
        flush=True,
    )
    config = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "dataset": loaded["name"],
        "network": f"pcastro.convnet((1, 28, 28), channels={tuple(args.channels)})",
        "optimizer": "optax.adam(lr), constant rate, both methods",
        "seeds": seeds,
    }
    # No machine paths in the record: the dataset's name, and the output folder's name.
    config.pop("data_dir", None)
    config["out"] = args.out.name
    details = {
        "selected": chosen,
        "validation": table,
        "runs": runs,
        "fallback": loaded["fallback"],
        "images": {k: int(len(v[1])) for k, v in data.items()},
        "compile_s": {" ".join(map(str, k)): s for k, (_, s) in _COMPILED.items()},
        "step_timing": timing,
        "published_reference": PUBLISHED,
        "wall_s": {"selection": select_s, "total": time.perf_counter() - started},
        "load_average": {"start": load_before, "end": os.getloadavg()},
        "cpu_count": os.cpu_count(),
    }
    record = payload(config, seeds[0], rows, details)
    record["paired"] = paired
    path = save_json(args.out, record)
    plot(
        args.out / "results.png",
        runs,
        f"{loaded['name']}: convnet {tuple(args.channels)}, PC vs backprop on the same "
        f"modules, Adam, batch {args.batch}, {len(seeds)} seeds",
    )
    print(f"wrote {path} and results.png in {time.perf_counter() - started:.0f} s")
    for row in rows:
        print(f"  {row['method']:<9} {row['metric']:<14} {row['mean']:.4f} ± {row['ci95']:.4f}")
    d = paired["pc_minus_backprop_test_accuracy"]
    print(f"  pc - backprop test accuracy (paired): {d['mean']:+.4f} ± {d['ci95']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
