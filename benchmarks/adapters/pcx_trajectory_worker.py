"""The pcx side of `benchmarks/pcx_trajectory.py`, run in pcx's own virtual environment.

Runs the pcx benchmark paper's PC-CE MLP setting exactly as `pcx_lib.py` runs it (the same
`paper_parts`), from initial weights and batches that the driver hands over in an .npz:

    python pcx_trajectory_worker.py init --seed S --out INIT.npz
        pcx's own initial weights for seed S (`px.RKG.seed(S)`), as `w1, b1, ...`.
    python pcx_trajectory_worker.py steps --inputs IN.npz --out OUT.npz [--x64]
        from the weights `w*, b*` of IN.npz, one training step per batch of `x`, `y`
        (shape `(K, batch, ...)`), recording every step: the energies `(K, T + 1)`, the
        hidden states `h{l}` `(K, T + 1, batch, n_l)` and the weight updates `dw*, db*`
        `(K, ...)`.
    python pcx_trajectory_worker.py tta --inputs IN.npz --data MNIST.npz --seed S
        --max-epochs E --target-acc A
        from the weights of IN.npz, the adapters' time-to-accuracy loop (`_common.run_tta`,
        same shuffling for seed S); prints one JSON record.

Everything the library prints goes to stderr; stdout carries only the JSON of `tta`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import pcx_lib  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("init", "steps", "tta"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--data", type=str, default=None)
    parser.add_argument("--x64", action="store_true", help="compute in float64")
    parser.add_argument("--max-epochs", type=int, default=25)
    parser.add_argument("--target-acc", type=float, default=0.98)
    return parser.parse_args(argv)


def workload(epoch_steps: int) -> _common.Workload:
    import dataclasses

    return dataclasses.replace(_common.make_workload("mnist"), epoch_steps=epoch_steps)


def build(spec: _common.Workload, seed: int, weights: dict[str, np.ndarray] | None):
    """The paper setting's parts, its layers set to `weights` when given."""
    import jax.numpy as jnp
    import pcx as px

    px.RKG.seed(seed)
    parts = pcx_lib.paper_parts(spec)
    model = parts[0]
    if weights is not None:
        for i, layer in enumerate(model.layers, start=1):
            for name in ("weight", "bias"):
                param = getattr(layer.nn, name)
                value = jnp.asarray(weights[f"{name[0]}{i}"], dtype=param.get().dtype)
                if value.shape != param.get().shape:
                    raise ValueError(f"{name[0]}{i}: {value.shape} != {param.get().shape}")
                param.set(value)
    return parts


def export_init(args) -> None:
    spec = workload(epoch_steps=1)
    model = build(spec, args.seed, None)[0]
    arrays = {}
    for i, layer in enumerate(model.layers, start=1):
        arrays[f"w{i}"] = np.asarray(layer.nn.weight.get())
        arrays[f"b{i}"] = np.asarray(layer.nn.bias.get())
    np.savez(args.out, **arrays)


def run_steps(args) -> None:
    with np.load(args.inputs) as f:
        inputs = {k: np.asarray(f[k]) for k in f.files}
    spec = workload(epoch_steps=int(inputs["epoch_steps"]))
    model, train_on_batch, _, optim_w, optim_h = build(spec, args.seed, inputs)
    dtype = np.float64 if args.x64 else np.float32
    records = []
    for x, y in zip(inputs["x"], inputs["y"], strict=True):
        out = train_on_batch(
            pcx_lib.PAPER["T"],
            True,
            x.astype(dtype),
            y.astype(dtype),
            model=model,
            optim_w=optim_w,
            optim_h=optim_h,
        )
        records.append(_common.block(out))
    arrays = {"energies": np.stack([np.asarray(r["energies"]) for r in records])}
    for i in range(len(records[0]["states"][0])):
        arrays[f"h{i + 1}"] = np.stack(
            [np.stack([np.asarray(s[i]) for s in r["states"]]) for r in records]
        )
    for i in range(len(records[0]["update"])):
        arrays[f"dw{i + 1}"] = np.stack([np.asarray(r["update"][i][0]) for r in records])
        arrays[f"db{i + 1}"] = np.stack([np.asarray(r["update"][i][1]) for r in records])
    np.savez(args.out, **arrays)


def run_tta(args) -> dict:
    with np.load(args.inputs) as f:
        weights = {k: np.asarray(f[k]) for k in f.files}
    data = _common.load_data("mnist", args.data)
    spec = workload(epoch_steps=len(data["x_train"]) // 128)
    model, train_on_batch, eval_on_batch, optim_w, optim_h = build(spec, args.seed, weights)

    def step(x, y):
        train_on_batch(
            pcx_lib.PAPER["T"], False, x, y, model=model, optim_w=optim_w, optim_h=optim_h
        )
        return model.layers[-1].nn.weight.get()

    trainer = _common.Trainer(step=step, predict=lambda x: eval_on_batch(x, model=model))
    record = {"library": "pcx", "seed": args.seed, "versions": _common.versions(("pcx",))}
    record.update(_common.run_tta(trainer, spec, args, data))
    return record


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    with _common._stdout_to_stderr() as out:
        if args.command == "init":
            export_init(args)
        elif args.command == "steps":
            run_steps(args)
        else:
            out.write(json.dumps(run_tta(args)) + "\n")
        out.flush()
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
