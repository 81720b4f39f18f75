"""pcx (PyPI `pcx`, pins jax<0.5): the workload written the way pcx's tutorials write it.

`pxc.EnergyModule` with `pxnn.Linear` layers and one `pxc.Vode` (Gaussian `se_energy`) per
layer; the top vode is `frozen` and set to the target. One `pxf.jit` train step: a
`STATUS.INIT` forward pass (feedforward initialisation), `spec.steps` inference steps
(`pxf.value_and_grad` over the unfrozen `VodeParam`s, `pxu.Optim(optax.sgd(dt))`), then
one `pxu.Optim(optax.adam(lr))` step on the `LayerParam` gradient of the same energy. The
energy is `psum`-ed over the batch axis (sum, as in the workload).

On `--workload mnist --mode tta` the adapter runs instead the pcx benchmark paper's own
MLP setting (Pinchetti et al., ICLR 2025; pcax repository,
`examples/s4_1_discriminative_mode/MLP/mnist/PC_CE.py` with `L_PC_CE_mnist.yaml`): GELU,
`ce_energy` on the (frozen, target-clamped) top vode, T=5 inference steps with
`optax.sgd(0.0183, momentum=0.35)` on the per-example activity gradients (the batch-mean
energy's gradient scaled by the batch size, as the paper's `optim_h.step(..., True)`),
then one `optax.adamw` step (weight decay 0.0033) on the gradient of the batch-mean
energy, its learning rate on the paper's warmup-cosine schedule (peak 1.1 x 2.996e-4 over
the paper's 25 epochs, 10% warmup, end 0.1 x). `--setting NAME` runs another named
setting of `_tta_settings.py` in the same model (e.g. `pcastro-best`: its state steps as
`optax.sgd` on the vodes, its weight optimiser), so two libraries can be timed on one
setting.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tta_settings as settings  # noqa: E402
from _common import Trainer, Workload, main  # noqa: E402


def make_trainer(spec: Workload, seed: int, mode: str) -> Trainer:
    import jax
    import jax.numpy as jnp
    import optax
    import pcx as px
    import pcx.functional as pxf
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    px.RKG.seed(seed)
    if spec.name == "mnist" and mode == "tta":
        return _paper_trainer(spec)
    if spec.setting:
        raise ValueError(f"pcx has no setting {spec.setting!r} for {spec.name}/{mode}")

    class Model(pxc.EnergyModule):
        def __init__(self, sizes, act_fn):
            super().__init__()
            self.act_fn = px.static(act_fn)
            self.layers = [
                pxnn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
            ]
            self.vodes = [pxc.Vode(pxc.se_energy) for _ in self.layers]
            self.vodes[-1].h.frozen = True

        def __call__(self, x, y):
            for vode, layer in zip(self.vodes[:-1], self.layers[:-1], strict=True):
                x = vode(self.act_fn(layer(x)))
            self.vodes[-1](self.layers[-1](x))
            if y is not None:
                self.vodes[-1].set("h", y)
            return self.vodes[-1].get("u")

    @pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0, 0), out_axes=0)
    def forward(x, y, *, model):
        return model(x, y)

    @pxf.vmap(
        pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)),
        in_axes=(0,),
        out_axes=(None, 0),
        axis_name="batch",
    )
    def energy(x, *, model):
        y_ = model(x, None)
        return jax.lax.psum(model.energy(), "batch"), y_

    @pxf.jit(static_argnums=0)
    def train_on_batch(steps, x, y, *, model, optim_w, optim_h):
        model.train()
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)
        optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
        for _ in range(steps):
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                _, g = pxf.value_and_grad(
                    pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]), has_aux=True
                )(energy)(x, model=model)
            optim_h.step(model, g["model"])
        optim_h.clear()
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            _, g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]), has_aux=True)(
                energy
            )(x, model=model)
        optim_w.step(model, g["model"])

    @pxf.jit()
    def eval_on_batch(x, *, model):
        model.eval()
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            return forward(x, None, model=model)

    model = Model(spec.sizes, jax.nn.tanh)
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(jnp.zeros((spec.batch, spec.sizes[0])), None, model=model)
        optim_h = pxu.Optim(lambda: optax.sgd(spec.dt))
        optim_w = pxu.Optim(lambda: optax.adam(spec.lr), pxu.M(pxnn.LayerParam)(model))

    def step(x, y):
        train_on_batch(spec.steps, x, y, model=model, optim_w=optim_w, optim_h=optim_h)
        return model.layers[-1].nn.weight.get()

    return Trainer(
        step=step,
        predict=lambda x: eval_on_batch(x, model=model),
        notes=(
            "pcx tutorial idiom: inference loop unrolled in Python inside pxf.jit (as in the "
            "pcx examples); se_energy on every vode, psum over batch"
        ),
        setting=f"optax.sgd({spec.dt}) on vodes, T={spec.steps}; Adam({spec.lr})",
    )


# The pcx paper's tuned hyperparameters for PC with a cross-entropy output on MNIST.
_P = settings.get("pcx-paper")
PAPER = {
    "T": _P["steps"],
    "x_lr": _P["state_lr"],
    "x_momentum": _P["state_momentum"],
    "w_lr": _P["lr"],
    "w_wd": _P["weight_decay"],
    "epochs": _P["epochs"],
}


def paper_parts(spec: Workload, name: str = "pcx-paper"):
    """A named setting's pieces (the paper's by default):
    `(model, train_on_batch, eval_on_batch, optim_w, optim_h)`.

    `train_on_batch(T, record, x, y, *, model, optim_w, optim_h)` runs one training step;
    with `record=True` it also returns, for the trajectory comparison
    (`benchmarks/pcx_trajectory.py`), the batch-mean energy at the states before every
    inference step and after the last one (`T + 1` values), the hidden states at the same
    points and the weight update. Call `px.RKG.seed` first: the layers draw their
    initial weights from it.
    """
    import jax
    import jax.numpy as jnp
    import optax
    import pcx as px
    import pcx.functional as pxf
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    act_fn = getattr(jax.nn, spec.activation)

    class Model(pxc.EnergyModule):
        def __init__(self, sizes):
            super().__init__()
            self.act_fn = px.static(act_fn)
            self.layers = [
                pxnn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
            ]
            self.vodes = [pxc.Vode() for _ in self.layers[:-1]] + [pxc.Vode(pxc.ce_energy)]
            self.vodes[-1].h.frozen = True

        def __call__(self, x, y):
            for vode, layer in zip(self.vodes[:-1], self.layers[:-1], strict=True):
                x = vode(self.act_fn(layer(x)))
            self.vodes[-1](self.layers[-1](x))
            if y is not None:
                self.vodes[-1].set("h", y)
            return self.vodes[-1].get("u")

    @pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0, 0), out_axes=0)
    def forward(x, y, *, model):
        return model(x, y)

    @pxf.vmap(
        pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)),
        in_axes=(0,),
        out_axes=(None, 0),
        axis_name="batch",
    )
    def energy(x, *, model):
        y_ = model(x, None)
        return jax.lax.pmean(model.energy().sum(), "batch"), y_

    def hidden(model):
        return [vode.h.get() for vode in model.vodes[:-1]]

    def weights(model):
        return [(layer.nn.weight.get(), layer.nn.bias.get()) for layer in model.layers]

    @pxf.jit(static_argnums=(0, 1))
    def train_on_batch(steps, record, x, y, *, model, optim_w, optim_h):
        model.train()
        energies, states = [], []
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)
        optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
        for _ in range(steps):
            if record:
                states.append(hidden(model))
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                (e, _), g = pxf.value_and_grad(
                    pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]), has_aux=True
                )(energy)(x, model=model)
            energies.append(e)
            optim_h.step(model, g["model"], scale_by=x.shape[0])
        optim_h.clear()
        if record:
            states.append(hidden(model))
            before = weights(model)
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            (e, _), g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]), has_aux=True)(
                energy
            )(x, model=model)
        energies.append(e)
        optim_w.step(model, g["model"])
        if record:
            update = [
                (w1 - w0, b1 - b0)
                for (w0, b0), (w1, b1) in zip(before, weights(model), strict=True)
            ]
            return {"energies": jnp.stack(energies), "states": states, "update": update}
        return None

    @pxf.jit()
    def eval_on_batch(x, *, model):
        model.eval()
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            return forward(x, None, model=model)

    chosen = settings.get(name, pc=True)
    model = Model(spec.sizes)
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(jnp.zeros((spec.batch, spec.sizes[0])), None, model=model)
        momentum = chosen["state_momentum"] or None
        optim_h = pxu.Optim(lambda: optax.sgd(chosen["state_lr"], momentum=momentum))
        optim_w = pxu.Optim(
            lambda: settings.weight_optimizer(optax, name, spec.epoch_steps),
            pxu.M(pxnn.LayerParam)(model),
        )
    return model, train_on_batch, eval_on_batch, optim_w, optim_h


def _paper_trainer(spec: Workload) -> Trainer:
    name = spec.setting or "pcx-paper"
    steps = settings.get(name)["steps"]
    model, train_on_batch, eval_on_batch, optim_w, optim_h = paper_parts(spec, name)

    def step(x, y):
        train_on_batch(steps, False, x, y, model=model, optim_w=optim_w, optim_h=optim_h)
        return model.layers[-1].nn.weight.get()

    return Trainer(
        step=step,
        predict=lambda x: eval_on_batch(x, model=model),
        notes=(
            "pcx benchmark paper's PC-CE MLP model (pcax examples/s4_1_discriminative_mode/"
            "MLP/mnist, L_PC_CE_mnist.yaml), written with the pcx 0.6 API; batch-mean energy"
        ),
        setting=f"ce_energy output (vodes); {settings.describe(name)}",
    )


if __name__ == "__main__":
    sys.exit(main(library="pcx", make_trainer=make_trainer, distributions=("pcx", "equinox")))
