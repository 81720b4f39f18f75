"""The per-example gate: each example's local gradient scaled by its own gate."""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._custom_types import Array, ArrayLike, Float
from .._free_energy import node_terms, summed_inputs
from .._learning import (
    _check_opt_state,
    checked_update,
    param_grads,
    raise_on_params,
)
from .._network import Network
from .._state import PCState, amortised_nodes
from ._gate import (
    AstrocyteGateState,
    _check_columns,
    _node_of_updates,
    check_ne,
    example_energy,
    example_gates,
    holds_parameters_outside_modules,
)
from ._regions import Regions


@jax.custom_vjp
def _scale_cotangent(pre, weights):
    return pre


def _scale_cotangent_fwd(pre, weights):
    return pre, weights


def _scale_cotangent_bwd(weights, cotangent):
    return cotangent * weights.astype(cotangent.dtype), jnp.zeros_like(weights)


_scale_cotangent.defvjp(_scale_cotangent_fwd, _scale_cotangent_bwd)


def _unit_weights(gates: Array, regions: Regions, node: int) -> Array:
    """Each example's gate of every unit of `node` (1..L), broadcastable to its summed
    input `(batch, *shape)`."""
    c, start, shape = regions.columns[node - 1], regions.offsets[node - 1], regions.shapes[node - 1]
    block = gates[:, start : start + c]
    if c == 1:
        return block.reshape((-1,) + (1,) * len(shape))
    return jnp.repeat(block, math.prod(shape) // c, axis=1).reshape((-1, *shape))


def _gated_drive(params, static, state: PCState, gates: Array, regions: Regions):
    """The drive `G` of [`pcastro.param_grads`][], with the error signal that example `b`
    sends to the synapses of region `r` scaled by `gates[b, r]`."""
    net = eqx.combine(params, static)
    skip = amortised_nodes(net, state.clamps)
    leaky = {i: state.e[i] for i, n in enumerate(net.nodes, start=1) if n.tau_e is not None}
    pres = summed_inputs(net, state.x, skip=skip)
    pres = {i: _scale_cotangent(pre, _unit_weights(gates, regions, i)) for i, pre in pres.items()}
    # A leaky node's error neurons are arrays (`init_state` sets them).
    drive, _, _ = node_terms(net, state.x, skip=skip, pres=pres, leaky=leaky)  # pyright: ignore[reportArgumentType]
    return drive / state.batch_size


def _check_node_parameters(params: Network) -> None:
    """Every parameter must reach the energy through a module's summed input, where the
    per-example gate scales the error signal."""
    for i, node in enumerate(params.nodes, start=1):
        if holds_parameters_outside_modules(node):
            raise ValueError(
                f"Node {i} holds parameters outside its modules (in its energy), which do not "
                "reach the energy through the node's summed input; the per-example gate "
                "cannot scale their gradient per example. Use the batch gate "
                "(`per_example=False`)."
            )


def gated_param_grads(
    net: Network,
    state: PCState,
    *,
    gates: Float[Array, "batch regions"],
    regions: Regions,
):
    r"""Local gradients with each example's gradient scaled, region by region, by its own
    gate, then averaged over the batch:

    `(1/B) sum_b g_{b,r} * dF_b/dtheta_r`,

    `theta_r` the synapses onto region `r` (as [`pcastro.astro.gate_updates`][] maps
    them: a node's parameters, or with columns the output rows of its
    `equinox.nn.Linear` layers), `dF_b/dtheta` the local gradient of example `b` alone
    ([`pcastro.param_grads`][] of a batch of one). With every `g_{b,r} = 1` it is
    [`pcastro.param_grads`][].

    **Cost.** No per-example gradient is formed. The parameters of region `r` reach
    example `b`'s energy only through its summed input `pre_{b,i}` at the units `i` of
    `r`, so scaling the error signal `dF_b/dpre_{b,i}` that flows back to the synapses
    by `g_{b,r}` scales exactly that example's share of their gradient: one backward
    pass, the memory of [`pcastro.param_grads`][] plus the gates broadcast over the
    units, `batch x units` numbers, instead of the `batch x params` of stacking
    per-example gradients with `jax.vmap`. For a linear layer this is the local rule
    `dF/dW_l = -(1/B) sum_b g_b (f'(W_l x_{b,l-1}) * e_{b,l}) x_{b,l-1}^T`: the gate is a
    third factor, per stimulus, on the error term.

    **Arguments:**

    - `net`: the network.
    - `state`: the batched (inferred) states.
    - `gates`: `g_{b,r}`, shape `(batch, R)`.
    - `regions`: the [`pcastro.astro.Regions`][] of `net`.

    **Returns:**

    A pytree like `eqx.filter(net, eqx.is_inexact_array)`.

    **Raises:**

    `ValueError` when `gates` is not `(batch, R)`, or for columns on a module whose
    output units cannot be mapped, or parameters outside a node's modules; `TypeError`
    when the regions were built for another network.
    """
    if not isinstance(regions, Regions):
        raise TypeError(
            "`regions` must be a `pcastro.astro.Regions` from `make_regions(net)`, got "
            f"{type(regions).__name__}."
        )
    params, static = eqx.partition(net, eqx.is_inexact_array)
    _node_of_updates(params, regions)
    _check_columns(params, regions)
    _check_node_parameters(params)
    gates = jnp.asarray(gates)
    want = (state.batch_size, regions.num_regions)
    if gates.shape != want:
        raise ValueError(
            f"`gates` has shape {gates.shape}; the per-example gate needs one gate per "
            f"example and region, shape {want}."
        )
    return jax.grad(_gated_drive)(params, static, state, gates, regions)


def _gate_state(opt_state: Any) -> AstrocyteGateState:
    found = [
        leaf
        for leaf in jax.tree_util.tree_leaves(
            opt_state, is_leaf=lambda s: isinstance(s, AstrocyteGateState)
        )
        if isinstance(leaf, AstrocyteGateState)
    ]
    if len(found) != 1:
        raise ValueError(
            f"The per-example gate needs exactly one astrocyte gate in the optimiser; its "
            f"state holds {len(found)}."
        )
    return found[0]


def example_weights(opt_state: Any, region_energy: Array, ne: Array) -> Array:
    """`w_{b,r} = g_{b,r} / mean_b g_{b,r}` (1 where every gate of region `r` is 0), from
    the calcium and astrocytes that the gate's state holds."""
    gate = _gate_state(opt_state)
    _, gates = example_gates(gate.astrocytes, gate.calcium, region_energy, ne)
    mean = jnp.mean(gates, axis=0)
    open_ = mean > 0
    return jnp.where(open_, gates / jnp.where(open_, mean, 1.0), 1.0)


@eqx.filter_jit
def apply_example_grads(net, opt_state, state, *, optimizer, regions, region_energy, ne):
    """The per-example gated update; `(net, opt_state, status)` (see
    [`pcastro.astro.apply_gated_grads`][] with `per_example=True`)."""
    _check_opt_state(net, opt_state, optimizer)
    gate = _gate_state(opt_state)
    num = regions.num_regions
    energy = example_energy(region_energy, num).astype(gate.calcium.dtype)
    if energy.shape[0] != state.batch_size:
        raise ValueError(
            f"`region_energy` has {energy.shape[0]} rows but the state holds "
            f"{state.batch_size} examples; pass `region_energies(state, regions)`."
        )
    ne = check_ne(ne, num, batch=state.batch_size)
    if gate.astrocytes.ablated:  # every gate is exactly 1: the plain local gradient
        grads = param_grads(net, state)
    else:
        weights = example_weights(opt_state, energy, ne)
        grads = gated_param_grads(net, state, gates=weights, regions=regions)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    optimizer = optax.with_extra_args_support(optimizer)
    updates, opt_state = optimizer.update(
        grads, opt_state, params, region_energy=energy, ne=ne, per_example=True
    )
    params, status = checked_update(params, updates)
    return eqx.combine(params, static), opt_state, status


def apply_per_example(
    net: Network,
    opt_state: Any,
    state: PCState,
    *,
    optimizer: optax.GradientTransformation,
    regions: Regions | None,
    region_energy: ArrayLike,
    ne: ArrayLike,
    throw: bool,
) -> tuple[Network, Any]:
    if not isinstance(regions, Regions):
        raise ValueError(
            "`apply_gated_grads(..., per_example=True)` needs the regions the gate was built "
            "with, to map each example's gates onto the synapses: pass "
            f"`regions=make_regions(net, ...)`; got {type(regions).__name__}."
        )
    net, opt_state, status = apply_example_grads(
        net,
        opt_state,
        state,
        optimizer=optimizer,
        regions=regions,
        region_energy=jnp.asarray(region_energy),
        ne=jnp.asarray(ne),
    )
    return raise_on_params(net, status, throw), opt_state
