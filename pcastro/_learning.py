"""Local parameter gradients at the inferred states, and the PC training step."""

from typing import Any

import equinox as eqx
import jax
import optax

from ._custom_types import ArrayLike
from ._free_energy import node_terms, summed_inputs
from ._inference import AbstractSolver, Euler, Solution, infer
from ._network import Network
from ._state import PCState, amortised_nodes, init_state

StepInfo = Solution
"""What [`pcastro.train_step`][] reports: the [`pcastro.Solution`][] of its inference."""


def _drive(params, static, state: PCState, reference: PCState):
    """The drive `G` at fixed states, as a function of the parameters, per example."""
    net = eqx.combine(params, static)
    skip = amortised_nodes(net, state.clamps)
    leaky = {i: state.e[i] for i, n in enumerate(net.nodes, start=1) if n.tau_e is not None}
    pres = summed_inputs(net, reference.x, skip=skip)
    drive, _, _ = node_terms(net, state.x, skip=skip, pres=pres, leaky=leaky)
    return drive / state.batch_size


def param_grads(net: Network, state: PCState, *, reference: PCState | None = None):
    r"""Local gradients `dF/dtheta` of every parameter at the given (inferred) states.

    The states are constants, so the gradient for node `l`'s parameters depends only on
    its own error `e_l` and its parents' states `x_{l-1}` (for a linear layer,
    `dF/dW_l = -(f'(W_l x_{l-1}) * e_l) x_{l-1}^T`): no global backward pass.
    Averaged over the batch. A leaky error neuron drives its weights with its stored
    value `e_l` (`state.e`), not the instant error.

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
    return jax.grad(_drive)(params, static, state, reference)


def apply_param_grads(
    net: Network, opt_state: Any, state: PCState, *, optimizer: optax.GradientTransformation
) -> tuple[Network, Any]:
    """Apply `optimizer` to the local gradients at `state`; returns `(net, opt_state)`.

    `theta <- theta + optimizer(dF/dtheta)`, the gradients being those of
    [`pcastro.param_grads`][] at the given states.

    **Arguments:**

    - `net`: the network.
    - `opt_state`: `optimizer.init(eqx.filter(net, eqx.is_inexact_array))`, or the state
      a previous update returned.
    - `state`: the batched states, usually `infer(...).state`.
    - `optimizer`: any Optax transformation.

    **Returns:**

    `(net, opt_state)`: the updated network and optimiser state.
    """
    params, static = eqx.partition(net, eqx.is_inexact_array)
    updates, opt_state = optimizer.update(param_grads(net, state), opt_state, params)
    return eqx.combine(optax.apply_updates(params, updates), static), opt_state


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
) -> tuple[Network, Any, Solution]:
    r"""One predictive-coding training step: infer with `x` and `y` clamped, then learn.

    1. states start at the feedforward pass, input and target clamped;
    2. [`pcastro.infer`][] relaxes the hidden states for `steps` steps;
    3. the local gradients `dF/dtheta` at those states go through `optimizer`
       ([`pcastro.apply_param_grads`][]).

    A solver that learns during inference ([`pcastro.IncrementalPC`][], which updates
    the weights at every step, Salvatori et al., 2024) has already learned when
    inference ends; step 3 is then skipped. Compiled with `eqx.filter_jit` on first call
    (and inlined when called inside a user's own `jax.jit`); it compiles once per
    configuration.

    **Arguments:**

    - `net`, `opt_state`: the network and `optimizer.init(eqx.filter(net, eqx.is_inexact_array))`.
    - `x`: input batch; `y`: target batch or integer labels.
    - `optimizer`: any Optax transformation, e.g. `optax.adam(1e-3)` or an astrocyte gate
      chained after it (for `IncrementalPC`, the solver's own optimiser is used).
    - `solver`, `steps`, `tol`, `trace`, `throw`: as for [`pcastro.infer`][].

    **Returns:**

    `(net, opt_state, info)`: `info` is the [`pcastro.Solution`][] of the inference, its
    `energy` the mean energy per example at the relaxed states, before the update.
    """
    leaky = any(node.tau_e is not None for node in net.nodes)
    state = init_state(net, x, y, compute_errors=leaky)
    sol = infer(
        net,
        state,
        solver=solver,
        steps=steps,
        tol=tol,
        trace=trace,
        throw=throw,
        opt_state=opt_state if solver.learns else None,
    )
    if solver.learns:
        return sol.network, sol.opt_state, sol
    net, opt_state = apply_param_grads(net, opt_state, sol.state, optimizer=optimizer)
    return net, opt_state, sol
