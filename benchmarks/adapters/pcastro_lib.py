"""pcastro on the comparison workloads.

Throughput mode runs the workload exactly: Gaussian energy on every layer, tanh hidden,
identity output, feedforward initialisation, `spec.steps` Euler steps of size `spec.dt` on
the hidden states, one Adam(`spec.lr`) update. Time-to-accuracy mode uses what pcastro
offers on the same architecture and data, the setting `benchmarks/select_tta_setting.py`
chose on a validation split of the training images (never the test images): a
cross-entropy energy on the output node and few inference steps (`tta_setting`).

On MNIST `--setting NAME` runs a named setting of `_tta_settings.py` instead (e.g.
`pcx-paper`, the one `pcx_lib.py` runs in pcx by default): the state steps as
`pcastro.Euler(dt)`, or `pcastro.OptaxSolver(optax.sgd(lr, momentum))` with momentum
(pcastro's energy is summed over the batch, so each state moves by its own example's
gradient, as pcx's batch-size scaling does), and the setting's weight optimiser.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tta_settings as settings  # noqa: E402
from _common import Trainer, Workload, main  # noqa: E402


def tta_setting(spec: Workload):
    """`(steps, solver, optimizer, words)` for time-to-accuracy mode.

    MNIST: the named setting of `_tta_settings.py` (`--setting NAME`; default
    `pcastro-best`, chosen on validation for 98%). Digits: `results/tta_setting.json`.
    """
    import optax

    import pcastro as pc

    if spec.name == "mnist":
        name = spec.setting or "pcastro-best"
        s = settings.get(name, pc=True)
        if s["state_momentum"]:
            solver = pc.OptaxSolver(optax.sgd(s["state_lr"], momentum=s["state_momentum"]))
        else:
            solver = pc.Euler(dt=s["state_lr"])
        optimizer = settings.weight_optimizer(optax, name, spec.epoch_steps)
        return s["steps"], solver, optimizer, settings.describe(name)
    return 3, pc.Euler(dt=0.1), optax.adam(1e-3), "3 Euler steps (dt 0.1), Adam(0.001)"


def network(spec: Workload, seed: int, mode: str, *, dtype=None):
    """The MLP of the workload: cross-entropy output energy in tta mode, else Gaussian."""
    import jax

    import pcastro as pc

    return pc.mlp(
        list(spec.sizes),
        key=jax.random.PRNGKey(seed),
        activation=getattr(jax.nn, spec.activation),
        output_energy=pc.CrossEntropy() if mode == "tta" else None,
        dtype=dtype,
    )


def make_trainer(spec: Workload, seed: int, mode: str, *, net=None) -> Trainer:
    """The adapter's trainer; `net` (from `network`) replaces the seed's initial weights."""
    import equinox as eqx
    import jax
    import optax

    import pcastro as pc

    tta = mode == "tta"
    if spec.setting and not (tta and spec.name == "mnist" and spec.setting in settings.SETTINGS):
        raise ValueError(f"pcastro has no setting {spec.setting!r} for {spec.name}/{mode}")
    if net is None:
        net = network(spec, seed, mode)
    if tta:
        steps, solver, optimizer, words = tta_setting(spec)
        setting = f"CrossEntropy output energy, {words}"
    else:
        steps, solver, optimizer = spec.steps, pc.Euler(dt=spec.dt), optax.adam(spec.lr)
        setting = f"Gaussian energy, {spec.steps} Euler steps (dt {spec.dt}), Adam({spec.lr})"
    params, static = eqx.partition(net, eqx.is_inexact_array)

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

    return Trainer(
        step=step,
        predict=lambda x: predict_jit(holder["params"], x),
        notes="output energy and inference steps differ from the throughput workload"
        if tta
        else "",
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
