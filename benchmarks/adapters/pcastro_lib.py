"""pcastro on the comparison workloads.

Throughput mode runs the workload exactly: Gaussian energy on every layer, tanh hidden,
identity output, feedforward initialisation, `spec.steps` Euler steps of size `spec.dt` on
the hidden states, one Adam(`spec.lr`) update. Time-to-accuracy mode uses what pcastro
offers on the same architecture and data, the setting `benchmarks/select_tta_setting.py`
chose on a validation split of the training images (never the test images): a
cross-entropy energy on the output node and few inference steps (`TTA_SETTINGS`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Trainer, Workload, main  # noqa: E402

# Chosen by benchmarks/select_tta_setting.py (results/tta_setting.json, tta_setting_mnist.json).
TTA_SETTINGS = {
    "digits": {"steps": 3, "dt": 0.1, "lr": 1e-3, "cosine_epochs": None},
    "mnist": {"steps": 3, "dt": 0.1, "lr": 3e-3, "cosine_epochs": 5},
}


def make_trainer(spec: Workload, seed: int, mode: str) -> Trainer:
    import equinox as eqx
    import jax
    import optax

    import pcastro as pc

    tta = mode == "tta"
    chosen = TTA_SETTINGS.get(spec.name) if tta else None
    net = pc.mlp(
        list(spec.sizes),
        key=jax.random.PRNGKey(seed),
        activation=getattr(jax.nn, spec.activation),
        output_energy=pc.CrossEntropy() if chosen else None,
    )
    steps, dt, lr = (
        (chosen["steps"], chosen["dt"], chosen["lr"])
        if chosen
        else (
            spec.steps,
            spec.dt,
            spec.lr,
        )
    )
    if chosen and chosen["cosine_epochs"]:
        schedule = optax.cosine_decay_schedule(
            lr, chosen["cosine_epochs"] * spec.epoch_steps, alpha=0.1
        )
        optimizer = optax.adamw(schedule, weight_decay=1e-4)
        opt_words = (
            f"AdamW({lr:g}, wd 1e-4, cosine to {lr / 10:g} over {chosen['cosine_epochs']} epochs)"
        )
    else:
        optimizer = optax.adam(lr)
        opt_words = f"Adam({lr:g})"
    params, static = eqx.partition(net, eqx.is_inexact_array)
    solver = pc.Euler(dt=dt)

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

    energy = "CrossEntropy output energy" if chosen else "Gaussian energy"
    return Trainer(
        step=step,
        predict=lambda x: predict_jit(holder["params"], x),
        notes="output energy and inference steps differ from the throughput workload"
        if chosen
        else "",
        setting=f"{energy}, {steps} Euler steps (dt {dt:g}), {opt_words}",
    )


if __name__ == "__main__":
    sys.exit(
        main(
            library="pcastro",
            make_trainer=make_trainer,
            distributions=("pcastro", "equinox", "optax"),
        )
    )
