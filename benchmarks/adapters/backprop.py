"""Backprop on the same modules: an Equinox MLP with the PC network's shapes.

Loss: softmax-free MSE on the one-hot target, summed over the batch,
`L = sum_batch 1/2 ||y - f(x)||^2` -- the PC network's output energy at the feedforward
states, so the two optimise the same objective. One `eqx.filter_jit` step with optax Adam.
On `--workload mnist` (GELU hidden) the loss is the softmax cross-entropy averaged over
the batch, the usual classifier; in time-to-accuracy mode the weights follow a named
setting of `_tta_settings.py` (`--setting NAME`; default `backprop-best`, backprop's
optimiser chosen on validation by the same procedure as pcastro's; `pcx-paper` or
`pcastro-best` give backprop another library's weight optimiser; `adam` is Adam(1e-3)).
The initial weights equal those of `pcastro_lib.py` for the same seed (the same
`equinox.nn.Linear` layers drawn from the same key).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tta_settings as settings  # noqa: E402
from _common import Trainer, Workload, main  # noqa: E402


def make_trainer(spec: Workload, seed: int, mode: str) -> Trainer:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    keys = jax.random.split(jax.random.PRNGKey(seed), len(spec.sizes) - 1)
    act = getattr(jax.nn, spec.activation)
    cross_entropy = spec.name == "mnist"

    class MLP(eqx.Module):
        layers: list

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = act(layer(x))
            return self.layers[-1](x)

    model = MLP(
        [
            eqx.nn.Linear(n_in, n_out, key=k)
            for n_in, n_out, k in zip(spec.sizes[:-1], spec.sizes[1:], keys, strict=True)
        ]
    )
    named = cross_entropy and mode == "tta"
    if spec.setting and not named:
        raise ValueError(f"backprop has no setting {spec.setting!r} for {spec.name}/{mode}")
    name = spec.setting or "backprop-best"
    if named:
        optimiser = settings.weight_optimizer(optax, name, spec.epoch_steps)
        words = f"cross-entropy loss; {settings.describe(name, backprop=True)}"
    else:
        optimiser = optax.adam(spec.lr)
        words = f"{'cross-entropy' if cross_entropy else 'MSE'} loss; Adam({spec.lr})"
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))

    def loss(m, x, y):
        if cross_entropy:
            return optax.softmax_cross_entropy(jax.vmap(m)(x), y).mean()
        err = y - jax.vmap(m)(x)
        return 0.5 * jnp.sum(err * err)

    @eqx.filter_jit
    def train_step(m, state, x, y):
        grads = eqx.filter_grad(loss)(m, x, y)
        updates, state = optimiser.update(grads, state, eqx.filter(m, eqx.is_array))
        return eqx.apply_updates(m, updates), state

    predict_jit = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))
    holder = {"model": model, "opt_state": opt_state}

    def step(x, y):
        holder["model"], holder["opt_state"] = train_step(
            holder["model"], holder["opt_state"], x, y
        )
        return eqx.filter(holder["model"], eqx.is_array)

    return Trainer(
        step=step,
        predict=lambda x: predict_jit(holder["model"], x),
        notes="backprop, softmax cross-entropy (batch mean), eqx.filter_jit"
        if cross_entropy
        else "backprop, softmax-free MSE (sum over batch of 1/2||y - f(x)||^2), eqx.filter_jit",
        setting=words,
    )


if __name__ == "__main__":
    sys.exit(
        main(library="backprop", make_trainer=make_trainer, distributions=("equinox", "optax"))
    )
