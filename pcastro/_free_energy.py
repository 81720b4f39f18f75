"""The network's energy: the one function that inference, learning, the astrocytes'
region energies and the backprop baseline all evaluate."""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from ._custom_types import Array, Float
from ._network import Network
from ._state import PCState, amortised_nodes


def summed_inputs(
    net: Network,
    xs: Sequence[Array],
    *,
    skip: Sequence[int] = (),
    given: Mapping[int, Array] | None = None,
) -> dict[int, Array]:
    """Batched summed inputs `pre_l = sum_k modules[k](x_{parents[k]})` of every node
    not in `skip`; those in `given` are taken as they are (hoisted out of a loop, or
    held fixed)."""
    given = given or {}
    out = {}
    for i, node in enumerate(net.nodes, start=1):
        if i in skip:
            continue
        if i in given:
            out[i] = given[i]
        else:
            out[i] = jax.vmap(node.summed_input)([xs[p] for p in node.parents])  # pyright: ignore[reportOptionalIterable]  # resolved by Network
    return out


def node_terms(
    net: Network,
    xs: Sequence[Array],
    *,
    skip: Sequence[int] = (),
    pres: Mapping[int, Array] | None = None,
    leaky: Mapping[int, Array] | None = None,
    integrate: bool | Array = False,
) -> tuple[Array, dict[int, Array], dict[int, Array]]:
    r"""The energy of every node of a batch, and the drive that states and weights descend.

    For node `l` with summed input `pre_l` (from `pres` where given, else computed from
    `xs`): the energy `E_l(x_l, pre_l)` per example. The drive `G = sum_l G_l` over the
    batch equals `F` for instant error neurons. A leaky error neuron (a node in `leaky`)
    enters linearly, `G_l = <e_l, x_l - mu_l>` with `e_l` held constant, so that `dG/dx`
    gives the force `e_l - J_{l+1}^T e_{l+1}` and `dG/dtheta` the weight change driven by
    the stored error; with `integrate`, `e_l` first takes one step of
    `e_l <- e_l + ((x_l - mu_l) - e_l) / tau_e`.

    **Returns:**

    `(G, energies, errors)`: the scalar drive, per node the energies `(batch,)`, and per
    leaky node the error neurons that drove `G`.
    """
    pres = summed_inputs(net, xs, skip=skip, given=pres)
    drive = jnp.asarray(0.0)
    energies = {}
    errors = {}
    for i, pre in pres.items():
        node = net.nodes[i - 1]
        energies[i] = jax.vmap(lambda x, p, n=node: n.energy(x, p, n.activation))(xs[i], pre)
        if leaky is not None and i in leaky:
            err = xs[i] - node.activation(pre)
            e = lax.stop_gradient(
                jnp.where(integrate, leaky[i] + (err - leaky[i]) / node.tau_e, leaky[i])
            )
            drive = drive + jnp.sum(e * err)
            errors[i] = e
        else:
            drive = drive + jnp.sum(energies[i])
    return drive, energies, errors


def node_energies(net: Network, states: Sequence[Array]) -> Float[Array, " nodes"]:
    """Energy `E_l` of every predicted node (`l = 1..L`) for one example.

    `F = sum_l E_l`; for Gaussian nodes `E_l = 1/2 ||x_l - mu_l||^2`.

    **Arguments:**

    - `net`: the network.
    - `states`: one example's state of every node, node 0 the input.

    **Returns:**

    An array of shape `(L,)`.
    """
    _, energies, _ = node_terms(net, [jnp.asarray(s)[None] for s in states])
    return jnp.stack([energies[i][0] for i in range(1, net.num_nodes)])


def local_energies(net: Network, state: PCState) -> Float[Array, "batch nodes"]:
    """Per-example, per-node energies `E_l` of a batched state, shape `(batch, L)`.

    Free cross-entropy nodes sit at their minimiser and contribute zero.

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `state`: a batched [`pcastro.PCState`][] of that network.

    **Returns:**

    An array of shape `(batch, L)`: column `l - 1` holds `E_l` of every example.
    """
    skip = amortised_nodes(net, state.clamps)
    _, energies, _ = node_terms(net, state.x, skip=skip)
    zero = jnp.zeros((state.batch_size,), net.dtype)
    return jnp.stack([energies.get(i, zero) for i in range(1, net.num_nodes)], axis=1)


def energy(net: Network, state: PCState) -> Float[Array, " batch"]:
    """The free energy `F = sum_l E_l` of every example in a batched state.

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `state`: a batched [`pcastro.PCState`][] of that network.

    **Returns:**

    An array of shape `(batch,)`.
    """
    return jnp.sum(local_energies(net, state), axis=1)
