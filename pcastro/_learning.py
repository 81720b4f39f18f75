"""Local parameter gradients at the inferred states, and the PC training step."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._custom_types import Array, ArrayLike, Float, Int
from ._inference import AbstractSolver, Euler, IncrementalPC, infer
from ._inference._driver import _amortised, check_inputs, check_status, finalise, relax
from ._network import Network
from ._state import PCState, init_state


def _param_energy(params, static, state: PCState, reference: PCState, skip):
    """`(G, F)` per example: `G` is what the weights descend, `F` the energy itself.

    They are equal with instant errors; a leaky error neuron drives the weights with its
    stored value, `G_l = <e_l, x_l - mu_l>`.
    """
    net = eqx.combine(params, static)
    total = 0.0
    value = 0.0
    for i, node in enumerate(net.nodes, start=1):
        if i in skip:
            continue
        pre = jax.vmap(node.summed_input)([reference.x[p] for p in node.parents])
        if node.tau_e is not None and state.e[i] is not None:
            # Leaky error neurons: the weight change is driven by the stored error e_l.
            err = state.x[i] - node.activation(pre)
            total = total + jnp.sum(jax.lax.stop_gradient(state.e[i]) * err)
            value = value + 0.5 * jnp.sum(err**2)
        else:
            e_i = jnp.sum(
                jax.vmap(lambda x, p, n=node: n.energy(x, p, n.activation))(state.x[i], pre)
            )
            total = total + e_i
            value = value + e_i
    return total / state.batch_size, value / state.batch_size


def param_grads(net: Network, state: PCState, *, reference: PCState | None = None):
    r"""Local gradients `dF/dtheta` of every parameter at the given (inferred) states.

    The states are constants, so the gradient for node `l`'s parameters depends only on
    its own error `e_l` and its parents' states `x_{l-1}` (for a linear layer,
    `dF/dW_l = -(f'(W_l x_{l-1}) * e_l) x_{l-1}^T`): no global backward pass.
    Averaged over the batch.

    **Arguments:**

    - `net`: the network.
    - `state`: the batched states, usually `infer(...).state`.
    - `reference`: take every prediction and its parents' states from this state instead
      (the fixed-prediction limit, with `reference` the feedforward state), while each
      node's own state comes from `state`.

    **Returns:**

    A pytree like `eqx.filter(net, eqx.is_inexact_array)`.
    """
    params, static = eqx.partition(net, eqx.is_inexact_array)
    reference = state if reference is None else reference
    return jax.grad(_param_energy, has_aux=True)(
        params, static, state, reference, _amortised(net, state)
    )[0]


class StepInfo(eqx.Module):
    """Diagnostics of one training step: the mean energy per example at the relaxed states
    (before the weight update), the number of inference steps and the status."""

    energy: Float[Array, ""]
    num_steps: Int[Array, ""]
    status: Int[Array, ""]
    energies: Float[Array, " steps"] | None


@eqx.filter_jit
def train_step(
    net: Network,
    opt_state: Any,
    x: ArrayLike,
    y: ArrayLike,
    *,
    optimizer: optax.GradientTransformation,
    solver: AbstractSolver = Euler(dt=0.1),
    steps: int = 20,
    tol: float | None = None,
    trace: bool = False,
    throw: bool = True,
) -> tuple[Network, Any, StepInfo]:
    r"""One predictive-coding training step: infer with `x` and `y` clamped, then learn.

    1. states start at the feedforward pass, input and target clamped;
    2. [`pcastro.infer`][] relaxes the hidden states for `steps` steps;
    3. the local gradients `dF/dtheta` at those states go through `optimizer`.

    With [`pcastro.IncrementalPC`][] the weights are also updated at every inference step
    (Salvatori et al., 2024). Compiled with `eqx.filter_jit` on first call (and inlined
    when called inside a user's own `jax.jit`); it compiles once per configuration.

    **Arguments:**

    - `net`, `opt_state`: the network and `optimizer.init(eqx.filter(net, eqx.is_inexact_array))`.
    - `x`: input batch; `y`: target batch or integer labels.
    - `optimizer`: any Optax transformation, e.g. `optax.adam(1e-3)` or an astrocyte gate
      chained before it.
    - `solver`, `steps`, `tol`, `trace`, `throw`: as for [`pcastro.infer`][].

    **Returns:**

    `(net, opt_state, info)` with a [`pcastro.StepInfo`][].
    """
    leaky = any(node.tau_e is not None for node in net.nodes)
    state = init_state(net, x, y, compute_errors=leaky)
    if isinstance(solver, IncrementalPC):
        sol = infer(
            net,
            state,
            solver=solver,
            steps=steps,
            tol=tol,
            trace=trace,
            throw=throw,
            opt_state=opt_state,
        )
        info = StepInfo(sol.energy, sol.num_steps, sol.status, sol.energies)
        return sol.network, sol.opt_state, info
    check_inputs(net, state, solver, steps, tol)
    free_xs, leaky, _, _, stats = relax(
        net, state, solver=solver, steps=steps, tol=tol, trace=trace
    )
    num_steps, status, energies, _ = stats
    status = check_status(status, throw=throw)
    state = finalise(net, state, free_xs, leaky, compute_errors=False)
    net, opt_state, energy = _learn(net, opt_state, state, optimizer=optimizer)
    return net, opt_state, StepInfo(energy, num_steps, status, energies)


def _learn(net: Network, opt_state: Any, state: PCState, *, optimizer):
    params, static = eqx.partition(net, eqx.is_inexact_array)
    # The energy at the relaxed states comes from the same forward pass as the gradient.
    grads, energy = jax.grad(_param_energy, has_aux=True)(
        params, static, state, state, _amortised(net, state)
    )
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return eqx.combine(optax.apply_updates(params, updates), static), opt_state, energy


def apply_param_grads(net: Network, opt_state: Any, state: PCState, *, optimizer):
    """Apply `optimizer` to the local gradients at `state`; returns `(net, opt_state)`."""
    net, opt_state, _ = _learn(net, opt_state, state, optimizer=optimizer)
    return net, opt_state
