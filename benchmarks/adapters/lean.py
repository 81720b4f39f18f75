"""The floor: a hand-written PC step in plain JAX, one `jax.jit` for the whole step.

Hidden states start at the feedforward pass, relax for `spec.steps` steps of
`x <- x - dt * dF/dx` (`jax.grad` inside `lax.scan`), then `jax.grad` of the energy at the
final states w.r.t. the parameters feeds one optax Adam update. Nothing else: no library,
no status checks, no energy trace. Modules are `eqx.nn.Linear` (same init as `backprop`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Trainer, Workload, main  # noqa: E402


def make_trainer(spec: Workload, seed: int, mode: str) -> Trainer:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    keys = jax.random.split(jax.random.PRNGKey(seed), len(spec.sizes) - 1)
    layers = [
        eqx.nn.Linear(n_in, n_out, key=k)
        for n_in, n_out, k in zip(spec.sizes[:-1], spec.sizes[1:], keys, strict=True)
    ]
    params = [(layer.weight, layer.bias) for layer in layers]
    n_layers = len(params)
    act = getattr(jax.nn, spec.activation)

    def predict_one(p, x_prev, layer):
        w, b = p
        pre = x_prev @ w.T + b
        return pre if layer == n_layers - 1 else act(pre)

    def feedforward(p, x):
        states = []
        for layer in range(n_layers):
            x = predict_one(p[layer], x, layer)
            states.append(x)
        return states

    def energy(p, hidden, x, y):
        states = [x, *hidden, y]
        total = 0.0
        for layer in range(n_layers):
            err = states[layer + 1] - predict_one(p[layer], states[layer], layer)
            total = total + 0.5 * jnp.sum(err * err)
        return total

    optimiser = optax.adam(spec.lr)
    opt_state = optimiser.init(params)

    @jax.jit
    def train_step(p, state, x, y):
        hidden = feedforward(p, x)[:-1]

        def relax(h, _):
            grads = jax.grad(energy, argnums=1)(p, h, x, y)
            return [hi - spec.dt * gi for hi, gi in zip(h, grads, strict=True)], None

        hidden, _ = jax.lax.scan(relax, hidden, None, length=spec.steps)
        grads = jax.grad(energy)(p, hidden, x, y)
        updates, state = optimiser.update(grads, state, p)
        return optax.apply_updates(p, updates), state

    predict_jit = jax.jit(lambda p, x: feedforward(p, x)[-1])
    holder = {"params": params, "opt_state": opt_state}

    def step(x, y):
        holder["params"], holder["opt_state"] = train_step(
            holder["params"], holder["opt_state"], x, y
        )
        return holder["params"]

    return Trainer(
        step=step,
        predict=lambda x: predict_jit(holder["params"], x),
        notes="hand-written PC floor: jax.grad over states in lax.scan + optax.adam, one jax.jit",
        setting=f"GD on states, dt={spec.dt}, T={spec.steps}; Adam({spec.lr})",
    )


if __name__ == "__main__":
    sys.exit(main(library="lean", make_trainer=make_trainer, distributions=("equinox", "optax")))
