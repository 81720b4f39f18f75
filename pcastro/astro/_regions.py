"""Regions: the units one astrocyte covers, what it senses of their error neurons, and
their local energies `E_r`."""

import abc
import math
from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Float
from .._network import Network
from .._state import PCState


class Regions(eqx.Module):
    """Which units each astrocyte covers: static configuration, no arrays.

    Every predicted node `l = 1..L` (the input node 0 has no error neurons and so no
    region) is split into `columns[l - 1]` equal, contiguous blocks of its flattened
    units; each block is one region `r`, covered by one astrocyte. Regions are numbered
    node by node: node 1's columns first, then node 2's, and so on. With one column per
    node (the default) there is one astrocyte per layer.

    Build one with [`pcastro.astro.make_regions`][].

    **Fields:**

    - `shapes`: the state shape of each predicted node (one example).
    - `columns`: the number of regions in each predicted node.

    Grounded in Lefton et al. (*Science* 2025); the reference is on
    [`pcastro.astro.Astrocytes`][].
    """

    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    columns: tuple[int, ...] = eqx.field(static=True)

    def __check_init__(self):
        if len(self.shapes) != len(self.columns):
            raise ValueError(
                f"`Regions` got {len(self.shapes)} node shapes but {len(self.columns)} column "
                "counts; give one column count per predicted node."
            )
        for node, (shape, c) in enumerate(zip(self.shapes, self.columns, strict=True), start=1):
            size = math.prod(shape)
            if not isinstance(c, int) or c < 1 or size % c != 0:
                raise ValueError(
                    f"Node {node} has {size} units (shape {shape}) but `columns` asks for "
                    f"{c!r} regions there; columns are equal blocks of the flattened units, "
                    f"so use a positive divisor of {size} (e.g. 1)."
                )

    @property
    def num_regions(self) -> int:
        """`R`, the total number of regions (astrocytes)."""
        return sum(self.columns)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Flattened number of units of each predicted node."""
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def nodes(self) -> tuple[int, ...]:
        """For every region `r`, the node (`1..L`) it lies in."""
        return tuple(n for n, c in enumerate(self.columns, start=1) for _ in range(c))

    @property
    def offsets(self) -> tuple[int, ...]:
        """For every predicted node, the index of its first region."""
        out, total = [], 0
        for c in self.columns:
            out.append(total)
            total += c
        return tuple(out)


def make_regions(net: Network, *, columns: int | Sequence[int] = 1) -> Regions:
    """The regions of a network: one astrocyte per node, or `columns` per node.

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `columns`: regions per predicted node, an int for every node or a sequence of
      one int per predicted node (`net.num_nodes - 1` of them). Each must divide the
      node's number of (flattened) units.

    **Returns:**

    A [`pcastro.astro.Regions`][].

    **Raises:**

    `ValueError` when `columns` has the wrong length or does not divide a node.
    """
    num = net.num_nodes - 1
    if isinstance(columns, int):
        columns = (columns,) * num
    columns = tuple(columns)
    if len(columns) != num:
        raise ValueError(
            f"`columns` has {len(columns)} entries but the network has {num} predicted "
            f"nodes (nodes 1 to {num}); give one int per predicted node or a single int."
        )
    return Regions(shapes=tuple(net.shapes[1:]), columns=tuple(int(c) for c in columns))


class AbstractSense(eqx.Module):
    """What an astrocyte senses of the error neurons `e_i` of its region: one
    non-negative number per region, the signal that drives its calcium
    ([`pcastro.astro.Astrocytes`][] `sense=`).

    A subclass implements `__call__(errors)`, mapping the errors of one region's units
    (last axis) to a non-negative scalar, and holds no arrays (it is configuration).
    """

    @abc.abstractmethod
    def __call__(self, errors: Float[Array, "*batch units"]) -> Float[Array, "*batch"]:
        """The sensed signal of each region from its units' errors (the last axis)."""


class SquaredError(AbstractSense):
    r"""The local energy of the region, `E_r = 1/2 sum_{i in r} e_i^2` (the default).

    Large wherever the prediction is wrong, in either direction. At a clamped
    one-hot target that includes the unit the network wrongly predicted (`e_i < 0`
    there), so after one presentation every column whose prediction was off receives
    calcium, not only the presented class's.
    """

    def __call__(self, errors):
        return 0.5 * jnp.sum(errors**2, axis=-1)


class TargetExcess(AbstractSense):
    r"""A target-directed signal: the error where the state *exceeds* its prediction,

    `E_r^+ = 1/2 sum_{i in r} max(e_i, 0)^2`,  `e_i = x_i - mu_i`.

    At a clamped target node this is the error of the units that the target asks to be
    more active than predicted. With a one-hot target and a prediction in `[0, 1]` (a
    softmax, [`pcastro.CrossEntropy`][]) only the presented class's unit has `e_i > 0`:
    one presentation drives the calcium of the presented class's column and leaves
    every other output column at exactly zero, including the unit that was wrongly
    predicted, whose error is negative. With a prediction that can fall below zero (a
    linear Gaussian top) a non-target unit predicted negative is in excess too.

    The signal stays local: each astrocyte reads the sign and size of the error
    neurons of its own region, nothing else. This is the drive that turns "learn the
    presented class, leave the others alone" (the restriction imprinting makes by
    hand) into an astrocyte mechanism; its effect is measured in the one-shot
    benchmarks (`pc_astro_target`), beside the update restricted by hand.
    """

    def __call__(self, errors):
        return 0.5 * jnp.sum(jnp.maximum(errors, 0.0) ** 2, axis=-1)


def region_energies(
    state: PCState,
    regions: Regions,
    *,
    sense: AbstractSense = SquaredError(),  # noqa: B008 (immutable)
) -> Float[Array, "batch regions"]:
    """Local energy of every region, per example: `E_r = 1/2 sum_{i in r} e_i^2`.

    Read from the error neurons `state.e` (instant or leaky), so it is the local signal
    an astrocyte can sense around its synapses. It is always the squared error, whatever
    the node's energy: at a [`pcastro.CrossEntropy`][] top node it is
    `1/2 ||y - softmax(pre)||^2`, not the cross-entropy that inference descends there.
    With another `sense` (e.g. [`pcastro.astro.TargetExcess`][]) it is that signal
    instead.

    **Arguments:**

    - `state`: a batched [`pcastro.PCState`][] whose error neurons are up to date (as
      returned by `pcastro.init_state` or `pcastro.infer`).
    - `regions`: the [`pcastro.astro.Regions`][] of the same network.
    - `sense`: what is read of each region's errors; the squared error by default.

    **Returns:**

    An array of shape `(batch, R)`.

    **Raises:**

    `ValueError` when the state does not match the regions' network.

    Grounded in Lefton et al. (*Science* 2025); the reference is on
    [`pcastro.astro.Astrocytes`][].
    """
    if not isinstance(sense, AbstractSense):
        raise TypeError(
            "`sense` must be a `pcastro.astro.AbstractSense`, e.g. "
            f"`pcastro.astro.TargetExcess()`; got {type(sense).__name__}."
        )
    return _region_energies(state, regions, sense)


@eqx.filter_jit
def _region_energies(state: PCState, regions: Regions, sense: AbstractSense) -> Array:
    if len(state.e) != len(regions.shapes) + 1:
        raise ValueError(
            f"The state has {len(state.e)} nodes but the regions cover "
            f"{len(regions.shapes)} predicted nodes (+ the input); build the regions from "
            "the same network with `pcastro.astro.make_regions(net)`."
        )
    out = []
    for node, (shape, c) in enumerate(zip(regions.shapes, regions.columns, strict=True), start=1):
        e = state.e[node]
        if e is None or e.shape[1:] != shape:
            got = None if e is None else e.shape
            raise ValueError(
                f"Node {node} of the state has error neurons of shape {got}, but the "
                f"regions expect (batch, {', '.join(map(str, shape))}); build the regions "
                "from the same network with `pcastro.astro.make_regions(net)`."
            )
        out.append(sense(e.reshape(e.shape[0], c, -1)))
    return jnp.concatenate(out, axis=1)
