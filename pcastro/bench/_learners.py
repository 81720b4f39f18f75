"""Per-episode learners, written for one episode and vmapped over episodes and rates.

Every trained method uses the same Equinox modules (an MLP with a cross-entropy top
node); only the learning rule differs.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax

from .._custom_types import Array
from .._energy import CrossEntropy
from .._inference import Euler
from .._learning import train_step
from .._network import Network, mlp
from .._predict import accuracy
from ..baselines import backprop_step


def make_model(key, sizes) -> Network:
    """The shared architecture: tanh MLP with a cross-entropy output node."""
    return mlp(list(sizes), key=key, output_energy=CrossEntropy())


def params_of(net):
    return eqx.filter(net, eqx.is_inexact_array)


def update(method: str, net, opt_state, x, y, *, optimizer, inference_steps: int, dt: float):
    """One update of `method` ("pc" or "bp") on a batch."""
    if method == "pc":
        net, opt_state, _ = train_step(
            net,
            opt_state,
            x,
            y,
            optimizer=optimizer,
            solver=Euler(dt=dt),
            steps=inference_steps,
            throw=False,
        )
    elif method == "bp":
        net, opt_state, _ = backprop_step(net, opt_state, x, y, optimizer=optimizer)
    else:
        raise ValueError(f"Unknown learner {method!r}; expected 'pc' or 'bp'.")
    return net, opt_state


def learning_curve(
    method: str,
    key,
    support_x: Array,
    support_y: Array,
    query_x: Array,
    query_y: Array,
    lr,
    *,
    sizes,
    updates: int,
    inference_steps: int,
    dt: float,
) -> Array:
    """Train a fresh model on the support set (full batch) and return the query accuracy
    after every update, shape `(updates,)`."""
    net = make_model(key, sizes)
    optimizer = optax.adam(lr)
    opt_state = optimizer.init(params_of(net))

    def body(carry, _):
        net, opt_state = carry
        net, opt_state = update(
            method,
            net,
            opt_state,
            support_x,
            support_y,
            optimizer=optimizer,
            inference_steps=inference_steps,
            dt=dt,
        )
        return (net, opt_state), accuracy(net, query_x, query_y)

    _, accs = lax.scan(body, (net, opt_state), None, length=updates)
    return accs


def sequential_learning(
    method: str,
    net,
    novel_x: Array,
    novel_y: Array,
    lr,
    *,
    updates_per_example: int,
    inference_steps: int,
    dt: float,
    replay_x: Array | None = None,
    replay_y: Array | None = None,
    replay_key=None,
    replay_batch: int = 0,
):
    """Present each novel example once, in order, with `updates_per_example` updates on it
    (optionally each update also on a random batch drawn from a raw-image replay buffer).
    Returns the network after the last example."""
    optimizer = optax.adam(lr)
    opt_state = optimizer.init(params_of(net))
    replay = replay_x is not None and replay_batch > 0

    def present(carry, item):
        net, opt_state, key = carry
        x, y = item

        def one(carry, _):
            net, opt_state, key = carry
            bx, by = x[None], y[None]
            if replay:
                key, sub = jax.random.split(key)
                idx = jax.random.choice(sub, replay_x.shape[0], (replay_batch,), replace=False)
                bx = jnp.concatenate([bx, replay_x[idx]])
                by = jnp.concatenate([by, replay_y[idx]])
            net, opt_state = update(
                method,
                net,
                opt_state,
                bx,
                by,
                optimizer=optimizer,
                inference_steps=inference_steps,
                dt=dt,
            )
            return (net, opt_state, key), None

        carry, _ = lax.scan(one, (net, opt_state, key), None, length=updates_per_example)
        return carry, None

    key = replay_key if replay_key is not None else jax.random.key(0)
    (net, _, _), _ = lax.scan(present, (net, opt_state, key), (novel_x, novel_y))
    return net


def astrocyte_learning(
    net,
    support_x,
    support_y,
    lr,
    *,
    rounds: int,
    inference_steps: int,
    dt: float,
    ne: float = 1.0,
    tol: float = 1e-3,
):
    """Learning with astrocytes and the store: each support stimulus is presented once, in
    order, with one gated update under NE (a salient presentation), and snapshotted with
    its local errors; the store is then consolidated for `rounds` rounds (priority replay,
    gated by the stored E_r and NE, stored states, discard below `tol`).
    Returns the network."""
    from .._inference import infer
    from .._state import init_state
    from ..astro import (
        Astrocytes,
        apply_gated_grads,
        consolidate,
        make_regions,
        make_store,
        region_energies,
        scale_by_astrocytes,
        snapshot,
    )

    regions = make_regions(net)
    optimizer = optax.chain(
        optax.adam(lr), scale_by_astrocytes(Astrocytes(tau_c=2.0, c_half=0.05), regions)
    )
    opt_state = optimizer.init(params_of(net))
    solver = Euler(dt=dt)

    def present(carry, item):
        net, opt_state = carry
        x, y = item
        relaxed = infer(
            net,
            init_state(net, x[None], y[None]),
            solver=solver,
            steps=inference_steps,
            throw=False,
        ).state
        net, opt_state = apply_gated_grads(
            net,
            opt_state,
            relaxed,
            optimizer=optimizer,
            region_energy=region_energies(relaxed, regions),
            ne=ne,
        )
        return (net, opt_state), None

    (net, opt_state), _ = lax.scan(present, (net, opt_state), (support_x, support_y))
    relaxed = infer(
        net,
        init_state(net, support_x, support_y),
        solver=solver,
        steps=inference_steps,
        throw=False,
    ).state
    store, _ = snapshot(
        make_store(net, regions, capacity=support_x.shape[0]), relaxed, step=inference_steps
    )
    net, _, _, _ = consolidate(
        net,
        opt_state,
        store,
        optimizer=optimizer,
        ne=ne,
        steps=inference_steps,
        rounds=rounds,
        tol=tol,
        fresh=False,
        solver=solver,
    )
    return net
