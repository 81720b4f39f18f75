"""A lean hand-written PC training step: the floor pcastro's abstraction is measured against.

Plain `jax.grad` of the energy over the hidden states inside `lax.scan`, then `jax.grad`
of the energy over the weights and one Optax update, all in one `jax.jit`.
"""

import jax
import jax.numpy as jnp
import optax


def init_params(key, sizes, dtype=jnp.float32):
    params = []
    for k, (a, b) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        kw, kb = jax.random.split(k)
        lim = 1.0 / jnp.sqrt(a)
        params.append(
            (
                jax.random.uniform(kw, (b, a), dtype, -lim, lim),
                jax.random.uniform(kb, (b,), dtype, -lim, lim),
            )
        )
    return params


def _energy(params, hidden, x, y):
    states = [x, *hidden, y]
    total = 0.0
    last = len(params) - 1
    for i, (w, b) in enumerate(params):
        pre = states[i] @ w.T + b
        mu = pre if i == last else jnp.tanh(pre)
        total = total + 0.5 * jnp.sum((states[i + 1] - mu) ** 2)
    return total


def make_step(optimizer, *, steps: int, dt: float):
    def step(params, opt_state, x, y):
        hidden = []
        h = x
        for w, b in params[:-1]:
            h = jnp.tanh(h @ w.T + b)
            hidden.append(h)

        def body(hs, _):
            g = jax.grad(_energy, argnums=1)(params, hs, x, y)
            return [a - dt * ga for a, ga in zip(hs, g)], None

        hidden, _ = jax.lax.scan(body, hidden, None, length=steps)
        grads = jax.grad(_energy)(params, hidden, x, y)
        grads = jax.tree_util.tree_map(lambda g: g / x.shape[0], grads)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, x, y

    return jax.jit(step, donate_argnums=(0, 1))
