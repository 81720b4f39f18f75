"""pcastro and pcx on the pcx paper's MNIST setting, step by step from the same weights.

The pcx benchmark paper's PC-CE setting (784-128-128-128-10 GELU MLP, batch 128, pixels in
[-1, 1], cross-entropy energy on the clamped top node, T = 5 inference steps of
`sgd(0.0183, momentum 0.35)` on the per-example state gradients with the momentum reset
every batch, AdamW with weight decay 0.0033 on the batch-mean weight gradient, warmup-
cosine learning rate over 25 epochs) is run by `adapters/pcastro_lib.py --setting
pcx-paper` in pcastro and by `adapters/pcx_lib.py` in pcx. This script starts both from
pcastro's initial weights for `--seed`, feeds both the first `--batches` batches of the
time-to-accuracy loop for that seed, and compares, training step by training step, in the
order they are computed: the energy at the feedforward start, the hidden states after each
inference step and the energy there, and the weight update. pcx runs in its own virtual
environment (`adapters/pcx_trajectory_worker.py`, built as `time_to_accuracy.py` builds it);
pcastro here, through the adapter's own `tta_setting` and `pc.train_step`. It runs once in
float64 (where rounding cannot hide a difference of method) and once in float32 (what the
benchmarks run), and names the first quantity whose relative difference exceeds the
tolerance of that dtype.

`--swap-seeds 0,1,2` adds full time-to-accuracy runs with the initial weights exchanged:
pcastro from pcx's initial weights for each seed, pcx from pcastro's (same batches, same
evaluation as `time_to_accuracy.py`), to tell the weights' draw from the method.

    python benchmarks/pcx_trajectory.py --data-dir DIR
    python benchmarks/pcx_trajectory.py --data-dir DIR --swap-seeds 0,1,2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "adapters"))

import _common as adapter_common  # noqa: E402
import _driver as drv  # noqa: E402
import pcastro_lib  # noqa: E402

WORKER = drv.ADAPTER_DIR / "pcx_trajectory_worker.py"
# Relative differences above these name a quantity as differing.
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (or PCASTRO_DATA)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batches", type=int, default=20, help="training steps compared")
    parser.add_argument("--swap-seeds", default="", help="e.g. 0,1,2: exchanged-weights runs")
    parser.add_argument("--swap-epochs", type=int, default=25)
    parser.add_argument("--cache", type=Path, default=drv.default_cache())
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--out", type=Path, default=drv.RESULTS_DIR / "pcx_trajectory.json")
    return parser.parse_args(argv)


def spec_for(epoch_steps: int) -> adapter_common.Workload:
    return dataclasses.replace(
        adapter_common.make_workload("mnist"), setting="pcx-paper", epoch_steps=epoch_steps
    )


def weights_of(net) -> dict[str, np.ndarray]:
    out = {}
    for i, node in enumerate(net.nodes, start=1):
        out[f"w{i}"] = np.asarray(node.modules[0].weight)
        out[f"b{i}"] = np.asarray(node.modules[0].bias)
    return out


def with_weights(net, weights: dict[str, np.ndarray]):
    import equinox as eqx
    import jax.numpy as jnp

    for i in range(1, len(net.nodes) + 1):
        for name in ("weight", "bias"):
            value = jnp.asarray(weights[f"{name[0]}{i}"], dtype=net.dtype)
            net = eqx.tree_at(
                lambda n, i=i, k=name: getattr(n.nodes[i - 1].modules[0], k), net, value
            )
    return net


def run_worker(env: drv.Env, args: list[str], timeout: float) -> str:
    proc = subprocess.run(
        [env.python, str(WORKER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=drv._clean_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pcx worker {args[0]} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def pcastro_steps(net, batches, spec) -> dict[str, np.ndarray]:
    """pcastro's side: per training step, the energies and hidden states at every inference
    step (one `pc.infer` step at a time, the momentum carried in `solver_state`) and the
    update of `pc.train_step` (the adapter's own call)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import pcastro as pc

    steps, solver, optimizer, _ = pcastro_lib.tta_setting(spec)
    opt_state = optimizer.init(eqx.filter(net, eqx.is_inexact_array))
    train = jax.jit(
        lambda n, o, x, y: pc.train_step(
            n, o, x, y, optimizer=optimizer, solver=solver, steps=steps
        )
    )

    @jax.jit
    def one(n, state, solver_state):
        return pc.infer(
            n, state, solver=solver, steps=1, trace=True, throw=False, solver_state=solver_state
        )

    hidden = range(1, len(net.nodes))
    energies, states, updates, relaxed = [], [], [], []
    for x, y in batches:
        state = pc.init_state(net, x, y, compute_errors=False)
        e_t, h_t, solver_state = [], [[] for _ in hidden], None
        for _ in range(steps):
            for i in hidden:
                h_t[i - 1].append(np.asarray(state.x[i]))
            sol = one(net, state, solver_state)
            e_t.append(float(sol.energies[0]))
            state, solver_state = sol.state, sol.solver_state
        for i in hidden:
            h_t[i - 1].append(np.asarray(state.x[i]))
        e_t.append(float(jnp.mean(pc.energy(net, state))))
        new, opt_state, info = train(net, opt_state, x, y)
        relaxed.append(max(float(jnp.max(jnp.abs(info.state.x[i] - state.x[i]))) for i in hidden))
        after = weights_of(new)
        updates.append({k: after[k] - v for k, v in weights_of(net).items()})
        energies.append(e_t)
        states.append(h_t)
        net = new
    out = {"energies": np.asarray(energies), "relaxed_vs_stepwise": np.asarray(relaxed)}
    for i in hidden:
        out[f"h{i}"] = np.stack([np.stack(s[i - 1]) for s in states])
    for k in updates[0]:
        out[f"d{k}"] = np.stack([u[k] for u in updates])
    return out


def rel(ours: list[np.ndarray], theirs: list[np.ndarray]) -> float:
    """max |a - b| / max |b| pooled over the arrays (layers) of one quantity; pcx is the
    reference. Pooling keeps a layer whose update is zero up to rounding (the first layer
    in the first inference steps) from dividing rounding by rounding."""
    scale = max(float(np.max(np.abs(b))) for b in theirs)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs, strict=True))
    return diff / (scale if scale > 0 else 1.0)


def rel_l2(ours: list[np.ndarray], theirs: list[np.ndarray]) -> float:
    """||a - b|| / ||b|| over all arrays together."""
    diff = sum(float(np.sum((a - b) ** 2)) for a, b in zip(ours, theirs, strict=True))
    norm = sum(float(np.sum(b**2)) for b in theirs)
    return (diff / norm) ** 0.5 if norm > 0 else diff**0.5


def sequence(ours: dict, theirs: dict, t: int) -> list[tuple[str, float]]:
    """Training step `t`'s quantities in the order they are computed, with their relative
    differences: energy at the start, then per inference step the state update, the states
    and the energy there, then the weight update."""
    layers = sorted(k for k in theirs if k.startswith("h"))
    params = sorted(k for k in theirs if k.startswith("d"))
    n_points = theirs["energies"].shape[1]
    out = []
    for k in range(n_points):
        if k > 0:
            update = [ours[h][t, k] - ours[h][t, k - 1] for h in layers]
            update_ref = [theirs[h][t, k] - theirs[h][t, k - 1] for h in layers]
            out.append((f"state update of inference step {k}", rel(update, update_ref)))
            out.append(
                (
                    f"states after inference step {k}",
                    rel([ours[h][t, k] for h in layers], [theirs[h][t, k] for h in layers]),
                )
            )
        ours_e, theirs_e = ours["energies"][t, k], theirs["energies"][t, k]
        name = "energy at the feedforward start" if k == 0 else f"energy after step {k}"
        out.append((name, abs(ours_e - theirs_e) / abs(theirs_e)))
    out.append(("weight update", rel([ours[d][t] for d in params], [theirs[d][t] for d in params])))
    return out


def compare(ours: dict, theirs: dict, tol: float) -> dict[str, Any]:
    """Per training step, the relative differences; the first above `tol` is named."""
    params = sorted(k for k in theirs if k.startswith("d"))
    rows, first = [], None
    drift = {d: np.zeros_like(theirs[d][0]) for d in params}
    for t in range(theirs["energies"].shape[0]):
        seq = sequence(ours, theirs, t)
        for d in params:
            drift[d] += ours[d][t] - theirs[d][t]
        if first is None:
            first = next(
                (
                    {"training_step": t + 1, "quantity": name, "relative_difference": value}
                    for name, value in seq
                    if value > tol
                ),
                None,
            )
        worst = max(seq, key=lambda item: item[1])
        rows.append(
            {
                "training_step": t + 1,
                "energies_pcastro": [float(v) for v in ours["energies"][t]],
                "energies_pcx": [float(v) for v in theirs["energies"][t]],
                "worst_quantity": worst[0],
                "worst_relative_difference": worst[1],
                "states_relative_difference": max(v for n, v in seq if n.startswith("states")),
                "weight_update_relative_difference": seq[-1][1],
                "weight_update_relative_l2": rel_l2(
                    [ours[d][t] for d in params], [theirs[d][t] for d in params]
                ),
                "weight_update_relative_l2_per_parameter": {
                    d[1:]: rel_l2([ours[d][t]], [theirs[d][t]]) for d in params
                },
                "weights_max_abs_difference": max(float(np.max(np.abs(v))) for v in drift.values()),
                # e_1 = h_1 - mu_1 with mu_1 fixed by the clamped input: how far inference
                # moved each hidden layer, against the size of its states.
                "pcx_state_displacement_rms_over_state_rms": {
                    h: float(
                        np.sqrt(np.mean((theirs[h][t, -1] - theirs[h][t, 0]) ** 2))
                        / np.sqrt(np.mean(theirs[h][t, 0] ** 2))
                    )
                    for h in sorted(k for k in theirs if k.startswith("h"))
                },
            }
        )
    return {"tolerance": tol, "first_difference": first, "per_step": rows}


def rounding_reference(run32: dict, run64: dict) -> list[dict[str, float]]:
    """Each library's float32 weight updates against pcx's float64 ones from the same
    weights: how far float32 rounding alone moves an update."""
    params = sorted(k for k in run64["pcx"] if k.startswith("d"))
    rows = []
    for t in range(run64["pcx"]["energies"].shape[0]):
        ref = [run64["pcx"][d][t] for d in params]
        rows.append(
            {
                "training_step": t + 1,
                **{
                    f"{lib}_float32_vs_float64_weight_update_relative_l2": rel_l2(
                        [run32[lib][d][t] for d in params], ref
                    )
                    for lib in ("pcastro", "pcx")
                },
                "pcx_float32_vs_float64_weight_update_relative_l2_per_parameter": {
                    d[1:]: rel_l2([run32["pcx"][d][t]], [run64["pcx"][d][t]]) for d in params
                },
            }
        )
    return rows


def trajectory(env, data, args, dtype: str, tmp: Path) -> tuple[dict[str, Any], dict[str, dict]]:
    """Both libraries over the first `--batches` batches from pcastro's float32 initial
    weights for `--seed` (cast to `dtype`); the comparison and both runs' arrays."""
    import jax

    spec = spec_for(len(data["x_train"]) // 128)
    rng = np.random.default_rng(args.seed)
    batches = []
    for xb, yb in adapter_common.epoch_batches(data["x_train"], data["y_train"], 128, rng):
        batches.append((xb.astype(dtype), yb.astype(dtype)))
        if len(batches) == args.batches:
            break
    weights = weights_of(pcastro_lib.network(spec, args.seed, "tta"))
    if dtype == "float64":  # from here on; the float32 runs come first
        jax.config.update("jax_enable_x64", True)
    net = with_weights(pcastro_lib.network(spec, args.seed, "tta", dtype=dtype), weights)
    inputs = tmp / f"inputs_{dtype}.npz"
    np.savez(
        inputs,
        **weights,
        x=np.stack([b[0] for b in batches]),
        y=np.stack([b[1] for b in batches]),
        epoch_steps=spec.epoch_steps,
    )
    ours = pcastro_steps(net, batches, spec)
    out = tmp / f"pcx_{dtype}.npz"
    run_worker(
        env,
        ["steps", "--seed", str(args.seed), "--inputs", str(inputs), "--out", str(out)]
        + (["--x64"] if dtype == "float64" else []),
        args.timeout,
    )
    with np.load(out) as f:
        theirs = {k: np.asarray(f[k]) for k in f.files}
    result = {"dtype": dtype, **compare(ours, theirs, TOLERANCE[dtype])}
    result["pcastro_train_step_vs_stepwise_states_max_abs"] = float(
        np.max(ours.pop("relaxed_vs_stepwise"))
    )
    return result, {"pcastro": ours, "pcx": theirs}


def swap_runs(env, data_path: Path, data, args, tmp: Path) -> list[dict[str, Any]]:
    """Full time-to-accuracy runs with the initial weights of the other library."""
    spec = spec_for(len(data["x_train"]) // 128)
    runs = []
    for seed in [int(s) for s in args.swap_seeds.split(",") if s.strip()]:
        loop = argparse.Namespace(seed=seed, max_epochs=args.swap_epochs, target_acc=0.98)
        pcx_init = tmp / f"pcx_init_{seed}.npz"
        run_worker(env, ["init", "--seed", str(seed), "--out", str(pcx_init)], args.timeout)
        with np.load(pcx_init) as f:
            weights = {k: np.asarray(f[k]) for k in f.files}
        net = with_weights(pcastro_lib.network(spec, seed, "tta"), weights)
        trainer = pcastro_lib.make_trainer(spec, seed, "tta", net=net)
        record = adapter_common.run_tta(trainer, spec, loop, data)
        runs.append({"library": "pcastro", "initial_weights": "pcx", "seed": seed, **record})
        drv.log(f"[swap] pcastro from pcx's weights, seed {seed}: {record['test_acc_curve']}")
        ours_init = tmp / f"pcastro_init_{seed}.npz"
        np.savez(ours_init, **weights_of(pcastro_lib.network(spec, seed, "tta")))
        stdout = run_worker(
            env,
            ["tta", "--seed", str(seed), "--inputs", str(ours_init), "--data", str(data_path),
             "--max-epochs", str(args.swap_epochs), "--target-acc", "0.98"],
            args.timeout,
        )  # fmt: skip
        record = json.loads(stdout.strip().splitlines()[-1])
        runs.append({"initial_weights": "pcastro", **record})
        drv.log(f"[swap] pcx from pcastro's weights, seed {seed}: {record['test_acc_curve']}")
    for run in runs:
        curve = run["test_acc_curve"]
        run["first_epoch_at_0.98"] = next((i for i, a in enumerate(curve, 1) if a >= 0.98), None)
        for key in ("elapsed_s_curve", "seconds", "compile_s", "eval_s_included"):
            run.pop(key, None)  # timings on a shared machine are not the point here
    return runs


def _load_bench_common():
    """benchmarks/_common.py (the adapters' `_common` of the same name comes first on the path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_common", Path(__file__).resolve().parent / "_common.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summarise(payload: dict[str, Any]) -> dict[str, Any]:
    """The numbers the finding rests on, read off the per-step records."""
    out: dict[str, Any] = {}
    for result in payload["trajectories"]:
        rows = result["per_step"]
        out[result["dtype"]] = {
            "first_difference": result["first_difference"],
            "worst_relative_difference": max(r["worst_relative_difference"] for r in rows),
            "states_worst_relative_difference": max(r["states_relative_difference"] for r in rows),
            "energies_worst_relative_difference": max(
                abs(a - b) / abs(b)
                for r in rows
                for a, b in zip(r["energies_pcastro"], r["energies_pcx"], strict=True)
            ),
            "weight_update_relative_l2_step_1": rows[0]["weight_update_relative_l2"],
            "pcx_first_layer_displacement_over_state_step_1": rows[0][
                "pcx_state_displacement_rms_over_state_rms"
            ]["h1"],
        }
        if "rounding_reference" in result:
            out[result["dtype"]]["rounding_reference_step_1"] = result["rounding_reference"][0]
    if "swapped_initial_weights" in payload:
        out["epoch_first_at_0.98_with_swapped_weights"] = {
            f"{r['library']} from {r['initial_weights']}'s seed {r['seed']}": r[
                "first_epoch_at_0.98"
            ]
            for r in payload["swapped_initial_weights"]
        }
    return out


def recorded_command(argv: list[str]) -> str:
    """The command line with machine paths left out (--data-dir, --cache, --out)."""
    out, skip = ["python benchmarks/pcx_trajectory.py"], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--data-dir", "--cache", "--out"):
            out.append(f"{name} <{name[2:]}>")
            skip = "=" not in arg
            continue
        out.append(arg)
    return " ".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    env = drv.ensure_env("pcx", args.cache)
    if env.python is None:
        raise SystemExit(f"pcx environment: {env.reason}")
    data_path = drv.prepare_mnist(args.cache, args.data_dir)
    data = adapter_common.load_data("mnist", str(data_path))
    pcx_versions = json.loads(
        subprocess.run(
            [env.python, "-c", "import json, importlib.metadata as m; print(json.dumps("
             "{k: m.version(k) for k in ('pcx', 'jax', 'jaxlib', 'equinox', 'optax')}))"],
            capture_output=True, text=True, check=True, env=drv._clean_env(),
        ).stdout
    )  # fmt: skip
    payload: dict[str, Any] = {"environment": None}
    with tempfile.TemporaryDirectory() as tmp:
        float32, run32 = trajectory(env, data, args, "float32", Path(tmp))
        if args.swap_seeds:
            swapped = swap_runs(env, data_path, data, args, Path(tmp))
        float64, run64 = trajectory(env, data, args, "float64", Path(tmp))
        float32["rounding_reference"] = rounding_reference(run32, run64)
        payload["trajectories"] = [float64, float32]
        if args.swap_seeds:
            payload["swapped_initial_weights"] = swapped
    bench_common = _load_bench_common()
    payload["environment"] = bench_common.environment()
    payload["environment"]["command"] = recorded_command(
        sys.argv[1:] if argv is None else list(argv)
    )
    payload["environment"]["pcx_environment"] = pcx_versions
    payload["setting"] = pcastro_lib.tta_setting(spec_for(len(data["x_train"]) // 128))[3]
    payload["seed"], payload["batches"] = args.seed, args.batches
    payload["wall_s"] = time.perf_counter() - t0
    payload = {"summary": summarise(payload), **payload}
    for result in payload["trajectories"]:
        first = result["first_difference"]
        named = "none"
        if first:
            named = f"step {first['training_step']}, {first['quantity']}"
            named += f" ({first['relative_difference']:.3g})"
        worst = [f"{r['worst_relative_difference']:.2g}" for r in result["per_step"]]
        drv.log(
            f"[{result['dtype']}] first difference above {result['tolerance']:g}: {named}; "
            f"worst per step: {', '.join(worst)}"
        )
    bench_common.write_json(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
