"""pcastro on the comparison workloads.

Throughput mode runs the workload exactly: Gaussian energy on every layer, tanh hidden,
identity output, feedforward initialisation, `spec.steps` Euler steps of size `spec.dt` on
the hidden states, one Adam(`spec.lr`) update. Time-to-accuracy mode uses what pcastro
offers on the same architecture and data: a cross-entropy energy on the output node, 3
inference steps and Adam(1e-3), the setting `benchmarks/select_tta_setting.py` chose on a
validation split of the training images (never the test images).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Trainer, Workload, main  # noqa: E402


def make_trainer(spec: Workload, seed: int, mode: str) -> Trainer:
    import equinox as eqx
    import jax
    import optax

    import pcastro as pc

    tta = mode == "tta"
    net = pc.mlp(
        list(spec.sizes),
        key=jax.random.PRNGKey(seed),
        output_energy=pc.CrossEntropy() if tta else None,
    )
    steps = 3 if tta else spec.steps
    optimizer = optax.adam(spec.lr)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    solver = pc.Euler(dt=spec.dt)

    def train(params, opt_state, x, y):
        model, opt_state, _ = pc.train_step(
            eqx.combine(params, static),
            opt_state,
            x,
            y,
            optimizer=optimizer,
            solver=solver,
            steps=steps,
        )
        return eqx.filter(model, eqx.is_inexact_array), opt_state

    train_jit = jax.jit(train, donate_argnums=(0, 1))
    predict_jit = jax.jit(lambda p, x: pc.predict(eqx.combine(p, static), x))
    holder = {"params": params, "opt_state": optimizer.init(params)}

    def step(x, y):
        holder["params"], holder["opt_state"] = train_jit(
            holder["params"], holder["opt_state"], x, y
        )
        return holder["params"]

    setting = (
        "CrossEntropy output energy, 3 Euler steps (dt 0.1), Adam(1e-3)"
        if tta
        else f"Gaussian energy, {spec.steps} Euler steps (dt {spec.dt}), Adam({spec.lr})"
    )
    return Trainer(
        step=step,
        predict=lambda x: predict_jit(holder["params"], x),
        notes=""
        if not tta
        else "output energy and inference steps differ from the throughput workload",
        setting=setting,
    )


if __name__ == "__main__":
    sys.exit(
        main(
            library="pcastro",
            make_trainer=make_trainer,
            distributions=("pcastro", "equinox", "optax"),
        )
    )
