"""Local parameter gradients at the inferred states, and the PC training step."""

from typing import Any, SupportsFloat, SupportsIndex

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._custom_types import Array, ArrayLike
from ._free_energy import node_terms, summed_inputs
from ._inference import RESULTS, AbstractSolver, AdaptiveEuler, Solution, infer
from ._inference._driver import _as_float, _as_int
from ._inference._results import attach_errors, raise_if_failed
from ._network import Network
from ._state import PCState, amortised_nodes, init_state


def _drive(params, static, state: PCState, reference: PCState):
    """The drive `G` at fixed states, as a function of the parameters, per example."""
    net = eqx.combine(params, static)
    skip = amortised_nodes(net, state.clamps)
    leaky = {i: state.e[i] for i, n in enumerate(net.nodes, start=1) if n.tau_e is not None}
    pres = summed_inputs(net, reference.x, skip=skip)
    # A leaky node's error neurons are arrays (`init_state` sets them).
    drive, _, _ = node_terms(net, state.x, skip=skip, pres=pres, leaky=leaky)  # pyright: ignore[reportArgumentType]
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


def _norm(tree) -> Array | float:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves)) if leaves else 0.0


def checked_update(params, updates) -> tuple[Any, Array]:
    """`params + updates` and the status of that update ([`pcastro.RESULTS`][]).

    Learning checks what it produces: non-finite parameters are `nonfinite_update`, and
    an update larger than the parameters themselves (`||u|| > ||theta||`, with a floor
    of 1 for tiny networks) is `update_too_large`, the mark of a learning rate that
    will blow the energy up. Both cost one reduction over the parameters.
    """
    new = optax.apply_updates(params, updates)
    finite = jnp.all(
        jnp.asarray([jnp.all(jnp.isfinite(v)) for v in jax.tree_util.tree_leaves(new)])
    )
    too_large = _norm(updates) > jnp.maximum(_norm(params), 1.0)
    status = jnp.where(
        ~finite,
        RESULTS.nonfinite_update,
        jnp.where(too_large, RESULTS.update_too_large, RESULTS.successful),
    )
    return new, status


def _check_opt_state(net: Network, opt_state: Any, optimizer) -> None:
    """A clear error for an optimiser state from another network or optimiser."""
    params = eqx.filter(net, eqx.is_inexact_array)
    want = jax.tree_util.tree_structure(eqx.filter_eval_shape(optimizer.init, params))
    got = jax.tree_util.tree_structure(opt_state)
    if want != got:
        raise ValueError(
            "`opt_state` does not fit this network and optimiser (its structure differs from "
            "`optimizer.init(eqx.filter(net, eqx.is_inexact_array))`); initialise it from "
            "the same network and the same optimiser that you pass here."
        )


def has_gate(opt_state: Any) -> bool:
    """Whether an optimiser state holds an astrocyte gate's calcium
    ([`pcastro.astro.AstrocyteGateState`][]), i.e. whether its optimiser listens to NE.

    **Arguments:**

    - `opt_state`: any Optax state, e.g. of a chain.

    **Returns:**

    True when a [`pcastro.astro.scale_by_astrocytes`][] gate is in the chain.
    """
    from .astro._gate import AstrocyteGateState  # the astrocytes build on this module

    leaves = jax.tree_util.tree_leaves(
        opt_state, is_leaf=lambda s: isinstance(s, AstrocyteGateState)
    )
    return any(isinstance(leaf, AstrocyteGateState) for leaf in leaves)


def check_gate_arguments(opt_state: Any, ne: Any, where: str) -> None:
    """NE goes exactly where a gate listens: required with a gate, refused without one.

    A gate fed no NE keeps its calcium at zero and, with `g0 = 0`, shuts every synapse:
    the network would learn nothing, silently. NE passed to an optimiser without a gate
    would change nothing, just as silently.
    """
    gated = has_gate(opt_state)
    if gated and ne is None:
        raise ValueError(
            f"The optimiser of `{where}` contains an astrocyte gate "
            "(`pcastro.astro.scale_by_astrocytes`), which needs norepinephrine at every "
            "update: without it the calcium stays at 0 and a gate with `g0 = 0` stops all "
            "learning. Pass `ne=` (0.0 for none): `pcastro.train_step(..., ne=1.0)`, "
            "`pcastro.astro.apply_gated_grads(..., region_energy=..., ne=...)` or "
            "`pcastro.astro.consolidate(..., ne=...)`."
        )
    if not gated and ne is not None:
        raise ValueError(
            f"`{where}` got `ne` (norepinephrine), but its optimiser contains no astrocyte "
            "gate to listen to it, so NE would change nothing. Chain one after the "
            "optimiser, `optax.chain(optax.adam(1e-3), pcastro.astro.scale_by_astrocytes("
            "astrocytes, regions))`, or leave `ne` out."
        )


def apply_param_grads(
    net: Network,
    opt_state: Any,
    state: PCState,
    *,
    optimizer: optax.GradientTransformation,
    extra_args: dict | None = None,
    throw: bool = True,
) -> tuple[Network, Any]:
    """Apply `optimizer` to the local gradients at `state`; returns `(net, opt_state)`.

    `theta <- theta + optimizer(dF/dtheta)`, the gradients being those of
    [`pcastro.param_grads`][] at the given states. `extra_args` reach an optimiser that
    takes them (an `optax.GradientTransformationExtraArgs`). An optimiser with the
    astrocyte gate needs NE and the region energies: use
    [`pcastro.astro.apply_gated_grads`][] (or [`pcastro.train_step`][] with `ne=`).

    **Arguments:**

    - `net`: the network.
    - `opt_state`: `optimizer.init(eqx.filter(net, eqx.is_inexact_array))`, or the state
      a previous update returned.
    - `state`: the batched states, usually `infer(...).state`.
    - `optimizer`: any Optax transformation.
    - `extra_args`: keyword arguments for the optimiser's `update`, or None.
    - `throw`: raise when the update fails its check.

    **Returns:**

    `(net, opt_state)`: the updated network and optimiser state.

    **Raises:**

    With `throw=True`, a runtime error when the update is non-finite or larger than the
    parameters (see [`pcastro.RESULTS`][]); [`pcastro.train_step`][] reports the same
    as a status. `ValueError` when the optimiser holds an astrocyte gate and
    `extra_args` carry no `ne`, or carry `ne` without a gate.
    """
    net, opt_state, status = _apply(
        net, opt_state, state, optimizer=optimizer, **(extra_args or {})
    )
    return raise_on_params(net, status, throw), opt_state


@eqx.filter_jit
def _apply(net, opt_state, state, *, optimizer, **extra):
    _check_opt_state(net, opt_state, optimizer)
    check_gate_arguments(opt_state, extra.get("ne"), "apply_param_grads")
    if extra:
        optimizer = optax.with_extra_args_support(optimizer)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    updates, opt_state = optimizer.update(param_grads(net, state), opt_state, params, **extra)
    params, status = checked_update(params, updates)
    return eqx.combine(params, static), opt_state, status


def raise_on_params(net: Network, status: Array, throw: bool) -> Network:
    """With `throw`, `net` carrying a runtime error with the message of a failed `status`."""
    if not throw:
        return net
    params, static = eqx.partition(net, eqx.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if leaves:
        leaves[0] = attach_errors(leaves[0], status)
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)


def train_step(
    net: Network,
    opt_state: Any,
    x: ArrayLike,
    y: ArrayLike,
    *,
    optimizer: optax.GradientTransformation,
    solver: AbstractSolver = AdaptiveEuler(),
    steps: SupportsIndex = 20,
    tol: SupportsFloat | None = None,
    trace: bool = False,
    throw: bool = True,
    unroll: bool = False,
    ne: ArrayLike | None = None,
) -> tuple[Network, Any, Solution]:
    r"""One predictive-coding training step: infer with `x` and `y` clamped, then learn.

    1. states start at the feedforward pass, input and target clamped;
    2. [`pcastro.infer`][] relaxes the hidden states for `steps` steps;
    3. the local gradients `dF/dtheta` at those states go through `optimizer`
       ([`pcastro.apply_param_grads`][]).

    Learning checks what it produces: `info.status` is that of the inference or, when
    inference succeeded, that of the weight update (non-finite or larger than the
    parameters themselves: a learning rate far too large); with `throw=True` a failure
    raises with its [`pcastro.RESULTS`][] message.

    To update the weights at every inference step instead (incremental PC, Salvatori et
    al., 2024), use [`pcastro.incremental_step`][]. Compiled with `eqx.filter_jit` on
    first call (and inlined when called inside a user's own `jax.jit`); it compiles once
    per configuration.

    **Arguments:**

    - `net`, `opt_state`: the network and `optimizer.init(eqx.filter(net, eqx.is_inexact_array))`.
    - `x`: input batch; `y`: target batch or integer labels.
    - `optimizer`: any Optax transformation, e.g. `optax.adam(1e-3)` or an astrocyte gate
      chained after it.
    - `solver`, `steps`, `tol`, `trace`, `throw`, `unroll`: as for [`pcastro.infer`][].
    - `ne`: norepinephrine for an astrocyte gate in `optimizer`
      ([`pcastro.astro.scale_by_astrocytes`][]), scalar or one value per region. Required
      when the optimiser has a gate (0.0 for none) and refused when it has none; the gate
      reads the region energies `E_r` of the relaxed states.

    **Returns:**

    `(net, opt_state, info)`: `info` is the [`pcastro.Solution`][] of the inference, its
    `energy` the mean energy per example at the relaxed states, before the update.

    **Raises:**

    As [`pcastro.infer`][]; with `throw=True` a runtime error when the update fails its
    check; `ValueError` when `ne` is missing for a gate or given without one.
    """
    check_gate_arguments(opt_state, ne, "train_step")
    return _train_step(
        net,
        opt_state,
        x,
        y,
        optimizer=optimizer,
        solver=solver,
        steps=_as_int(steps, "steps"),
        tol=None if tol is None else _as_float(tol, "tol"),
        trace=trace,
        throw=throw,
        unroll=unroll,
        ne=None if ne is None else jnp.asarray(ne),
    )


@eqx.filter_jit
def _train_step(net, opt_state, x, y, *, optimizer, solver, steps, tol, trace, throw, unroll, ne):
    leaky = any(node.tau_e is not None for node in net.nodes)
    state = init_state(net, x, y, compute_errors=leaky)
    sol = infer(
        net,
        state,
        solver=solver,
        steps=steps,
        tol=tol,
        trace=trace,
        throw=False,
        unroll=unroll,
    )
    # A gate reads the region energies of the relaxed states (`inferred`) and NE.
    extra = {} if ne is None else {"inferred": sol.state, "ne": ne}
    new, opt_state, update_status = _apply(net, opt_state, sol.state, optimizer=optimizer, **extra)
    status = jnp.where(sol.status != RESULTS.successful, sol.status, update_status)
    sol = eqx.tree_at(lambda s: s.status, sol, raise_if_failed(status, throw=throw))
    return new, opt_state, sol
