"""The network's energy: per node and in total, for one example or a batch."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ._custom_types import Array, Float
from ._energy import CrossEntropy
from ._network import Network
from ._state import PCState


def node_energies(net: Network, states: Sequence[Array]) -> Float[Array, " nodes"]:
    """Energy `E_l` of every predicted node (`l = 1..L`) for one example.

    `F = sum_l E_l`; for Gaussian nodes `E_l = 1/2 ||x_l - mu_l||^2`.

    **Arguments:**

    - `net`: the network.
    - `states`: one example's state of every node, node 0 the input.

    **Returns:**

    An array of shape `(L,)`.
    """
    out = []
    for node in net.nodes:
        pre = node.summed_input([states[p] for p in node.parents])
        out.append(node.energy(states[len(out) + 1], pre, node.activation))
    return jnp.stack(out)


def local_energies(net: Network, state: PCState) -> Float[Array, "batch nodes"]:
    """Per-example, per-node energies `E_l` of a batched state, shape `(batch, L)`.

    Free cross-entropy nodes sit at their minimiser and contribute zero.
    """
    energies = jax.vmap(node_energies, in_axes=(None, 0))(net, state.x)
    amortised = jnp.array(
        [
            isinstance(node.energy, CrossEntropy) and state.clamps[i] == "free"
            for i, node in enumerate(net.nodes, start=1)
        ]
    )
    return jnp.where(amortised, 0.0, energies)


def energy(net: Network, state: PCState) -> Float[Array, " batch"]:
    """The free energy `F = sum_l E_l` of every example in a batched state."""
    return jnp.sum(local_energies(net, state), axis=1)
