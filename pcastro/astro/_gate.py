"""Astrocyte calcium driven by local error and norepinephrine, and the plasticity gate."""

import dataclasses
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import optax

from .._checks import check_values
from .._custom_types import Array, ArrayLike
from .._learning import apply_param_grads, check_gate_arguments
from .._network import Network
from .._state import PCState
from ._regions import AbstractSense, Regions, SquaredError, region_energies


class Astrocytes(eqx.Module):
    r"""Astrocytes that sense the local error of their region and gate its plasticity.

    Each region `r` (see [`pcastro.astro.Regions`][]) has one astrocyte with calcium
    `c_r`, driven by norepinephrine only when the signal it senses of its region's error
    neurons, `E_r`, exceeds a threshold:

    `tau_c dc_r/dt = -c_r + k * NE * s(E_r - theta_r)`,
    `s(u) = max(0, tanh(slope * u))`,

    `E_r` is the local energy `1/2 sum_{i in r} e_i^2` by default
    ([`pcastro.astro.SquaredError`][]). With `sense=`[`pcastro.astro.TargetExcess`][]
    it is target-directed, `E_r^+ = 1/2 sum_{i in r} max(e_i, 0)^2`: only the error of
    units that should be more active than predicted drives calcium, so at a clamped
    one-hot target one presentation opens the presented class's column and no other.

    integrated with one Euler step of size `dt` per parameter update,
    `c_r <- c_r + (dt / tau_c) * (-c_r + k * NE * s(E_r - theta_r))`. The plasticity of
    the synapses onto region `r` is scaled by the gate

    `g(c_r) = g0 + (1 - g0) * c_r / (c_r + c_half)`  (with `c_r` floored at 0),

    which lies in `[g0, 1)`: closed (`g0`) without calcium, half-way open at
    `c_r = c_half`, and fully open only as calcium saturates.

    `s` is a rectified sigmoid: it saturates like a logistic but is *exactly* zero at
    and below the threshold, so a region whose error stays below `theta_r` receives no
    calcium at all, and with `g0 = 0` no plasticity, whatever the NE. A plain logistic
    would leak a little calcium into every region.

    NE reaches the synapses only through this calcium: with `ablated=True` the
    astrocytes are silenced, the gate is exactly 1 everywhere (plain PC learning), and
    NE has exactly zero effect on learning, as Lefton et al. (2025) found for
    astrocyte-silenced synapses. With the astrocytes present and no NE, calcium stays at
    zero and the floor `g0` sets how much learning happens.

    **Coverage.** `covered` says which regions have an astrocyte at all. An uncovered
    region is locally what an ablated one is: its calcium gets no drive, its gate is
    exactly 1 (plain PC learning) and NE has no effect on its synapses. This tests the
    prediction that astrocytes need only sit around the synapses that determine the
    error: sweep the fraction and placement of covered regions.

    **Arguments (keyword-only):**

    - `tau_c`: calcium time constant, in the same units as `dt` (updates).
    - `k`: gain of the NE drive.
    - `theta`: error threshold `theta_r`, a scalar or one value per region, shape `(R,)`.
    - `slope`: slope of the sigmoid `s`.
    - `g0`: gate floor in `[0, 1]`: plasticity without calcium.
    - `c_half`: calcium at which the gate is half-way between `g0` and 1.
    - `dt`: Euler step of the calcium per update; at most `tau_c`.
    - `ablated`: silence the astrocytes (gate 1, NE without effect).
    - `covered`: which regions have an astrocyte: `True` (all), or a boolean mask with
      one entry per region, shape `(R,)`; uncovered regions learn with gate 1.
    - `sense`: what each astrocyte senses of its region's error neurons, an
      [`pcastro.astro.AbstractSense`][]: [`pcastro.astro.SquaredError`][] (default) or
      [`pcastro.astro.TargetExcess`][].

    **Raises:**

    `ValueError` for hyperparameters outside their range.

    ??? cite "Reference"

        ```bibtex
        @article{lefton2025norepinephrine,
            title={Norepinephrine signals through astrocytes to modulate synapses},
            author={Lefton, Katheryn B. and others},
            journal={Science},
            year={2025}
        }
        ```
    """

    tau_c: float
    k: float
    theta: Array
    slope: float
    g0: float
    c_half: float
    dt: float
    covered: Array
    sense: AbstractSense
    ablated: bool = eqx.field(static=True)

    def __init__(
        self,
        *,
        tau_c: float = 10.0,
        k: float = 1.0,
        theta: ArrayLike = 0.0,
        slope: float = 1.0,
        g0: float = 0.0,
        c_half: float = 0.1,
        dt: float = 1.0,
        ablated: bool = False,
        covered: ArrayLike = True,
        sense: AbstractSense = SquaredError(),  # noqa: B008 (immutable)
    ):
        if not isinstance(sense, AbstractSense):
            raise TypeError(
                "`Astrocytes(sense=...)` must be a `pcastro.astro.AbstractSense`, e.g. "
                f"`pcastro.astro.TargetExcess()`; got {type(sense).__name__}."
            )
        checks = [
            ("tau_c", tau_c, tau_c > 0, "positive"),
            ("dt", dt, 0 < dt <= tau_c, "in (0, tau_c] so the Euler step is stable"),
            ("k", k, k >= 0, "non-negative"),
            ("slope", slope, slope > 0, "positive"),
            ("g0", g0, 0 <= g0 <= 1, "in [0, 1]"),
            ("c_half", c_half, c_half > 0, "positive"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"`Astrocytes({name}=...)` must be {expected}, got {value!r}.")
        theta = jnp.asarray(theta)
        if theta.ndim > 1:
            raise ValueError(
                f"`Astrocytes(theta=...)` must be a scalar or one value per region, shape "
                f"(R,), got shape {theta.shape}."
            )
        if not jnp.issubdtype(theta.dtype, jnp.floating):
            theta = theta.astype(jnp.result_type(float))
        theta = check_values(
            theta, lambda xp, t: ~xp.isfinite(t), "`Astrocytes(theta=...)` must be finite."
        )
        covered = jnp.asarray(covered)
        if covered.dtype != jnp.bool_ or covered.ndim > 1:
            raise ValueError(
                "`Astrocytes(covered=...)` must be True/False or a boolean mask with one "
                f"entry per region, shape (R,); got dtype {covered.dtype} and shape "
                f"{covered.shape}. Build a mask with e.g. `np.arange(R) < k`."
            )
        self.covered = covered
        self.sense = sense
        self.tau_c = float(tau_c)
        self.k = float(k)
        self.theta = theta
        self.slope = float(slope)
        self.g0 = float(g0)
        self.c_half = float(c_half)
        self.dt = float(dt)
        self.ablated = bool(ablated)

    def drive(self, region_energy: Array) -> Array:
        """The sigmoid `s(E_r - theta_r)`, exactly zero at and below threshold."""
        return jnp.maximum(0.0, jnp.tanh(self.slope * (region_energy - self.theta)))

    def step(self, calcium: Array, region_energy: Array, ne: ArrayLike) -> Array:
        """One Euler step of the calcium of every region.

        **Arguments:**

        - `calcium`: `c_r`, shape `(R,)`.
        - `region_energy`: `E_r`, shape `(R,)`.
        - `ne`: norepinephrine, a scalar or one value per region.

        **Returns:**

        The new calcium, shape `(R,)`. Ablated astrocytes, and uncovered regions, get no
        NE drive (their calcium only decays).
        """
        if self.ablated:
            target = jnp.zeros_like(calcium)
        else:
            target = self.k * jnp.asarray(ne, calcium.dtype) * self.drive(region_energy)
            target = jnp.where(self.covered, target, 0.0)
        return calcium + (self.dt / self.tau_c) * (target - calcium)

    def gate(self, calcium: Array) -> Array:
        """The gate `g(c_r) = g0 + (1 - g0) * c_r / (c_r + c_half)`; exactly 1 if ablated
        and in uncovered regions."""
        if self.ablated:
            return jnp.ones_like(calcium)
        c = jnp.maximum(calcium, 0.0)
        gate = self.g0 + (1.0 - self.g0) * c / (c + self.c_half)
        return jnp.where(self.covered, gate, jnp.ones_like(gate))


class AstrocyteGateState(NamedTuple):
    """State of [`pcastro.astro.scale_by_astrocytes`][]: the calcium `c_r` of every region,
    and the astrocytes that made it.

    Read or set the calcium inside any chained optimiser state with
    `optax.tree_utils.tree_get(opt_state, "calcium")` /
    `optax.tree_utils.tree_set(opt_state, calcium=...)`. `astrocytes` records the
    hyperparameters (and `ablated`), so that a checkpoint ([`pcastro.save`][]) carries
    them: loading it with differently configured astrocytes is refused
    ([`pcastro.load`][] compares `ablated`; the gate compares the rest at its next
    update).
    """

    calcium: Array
    astrocytes: Astrocytes


def _node_of_updates(updates: Any, regions: Regions) -> tuple:
    nodes = getattr(updates, "nodes", None)
    if not isinstance(updates, Network) or len(nodes) != len(regions.shapes):  # pyright: ignore[reportArgumentType]  # a Network's nodes
        raise TypeError(
            "The astrocyte gate expects parameters shaped like "
            "`eqx.filter(net, eqx.is_inexact_array)` for the network the regions were "
            f"built from ({len(regions.shapes)} predicted nodes); got a "
            f"{type(updates).__name__}"
            + (f" with {len(nodes)} nodes" if isinstance(nodes, tuple) else "")
            + ". Initialise the optimiser with `optimizer.init(eqx.filter(net, "
            "eqx.is_inexact_array))`."
        )
    return nodes  # pyright: ignore[reportReturnType]  # a Network's nodes


def holds_parameters_outside_modules(node) -> bool:
    """Whether a node (of a parameter tree) holds arrays outside its modules, e.g. in its
    energy: parameters that no output unit of a module maps to."""
    rest = [
        getattr(node, f.name)
        for f in dataclasses.fields(node)
        if f.name != "modules" and not f.metadata.get("static", False)
    ]
    return any(eqx.is_array(leaf) for leaf in jax.tree_util.tree_leaves(rest))


def _rows_layer(module) -> eqx.nn.Linear | None:
    """The `eqx.nn.Linear` whose weight rows are `module`'s output units: the module itself,
    or the last layer of an `eqx.nn.Sequential` whose other layers hold no arrays (e.g. a
    reshape before the first dense layer of a conv body); None otherwise."""
    if isinstance(module, eqx.nn.Linear):
        return module
    if isinstance(module, eqx.nn.Sequential) and isinstance(module.layers[-1], eqx.nn.Linear):
        before = jax.tree_util.tree_leaves(module.layers[:-1])
        return None if any(eqx.is_array(leaf) for leaf in before) else module.layers[-1]
    return None


def _check_columns(updates: Network, regions: Regions) -> None:
    """Columns need output units that map to parameter rows: an `eqx.nn.Linear`, alone or
    last in an `eqx.nn.Sequential` without other parameters."""
    for node_index, (node, c, size) in enumerate(
        zip(updates.nodes, regions.columns, regions.sizes, strict=True), start=1
    ):
        if c == 1:
            continue
        for k, module in enumerate(node.modules):
            linear = _rows_layer(module)
            if linear is None:
                raise ValueError(
                    f"Node {node_index} is split into columns={c}, but its module {k} is a "
                    f"{type(module).__name__}: the gate can map output units to columns only "
                    "for `equinox.nn.Linear` layers (weight rows and bias entries), alone or "
                    "last in an `equinox.nn.Sequential` whose other layers hold no "
                    f"parameters. Use `make_regions(net, columns=...)` with 1 for node "
                    f"{node_index}."
                )
            weight = linear.weight
            if weight is not None and weight.shape[0] != size:
                raise ValueError(
                    f"Node {node_index} has {size} units in the regions, but its module {k} "
                    f"has {weight.shape[0]} output rows: the regions were built for another "
                    "network; build them with `make_regions(net, ...)` from this one."
                )
        if holds_parameters_outside_modules(node):
            raise ValueError(
                f"Node {node_index} is split into columns={c} but holds parameters outside "
                "its modules, which cannot be mapped to columns; use columns=1 for it."
            )


def _scale_rows(module, rows: Array):
    """Scale the output rows of `module`'s row layer (see `_rows_layer`) by `rows`."""
    if isinstance(module, eqx.nn.Sequential):
        return eqx.tree_at(lambda m: m.layers[-1], module, _scale_rows(module.layers[-1], rows))

    def scale(leaf):
        if leaf is None:
            return None
        r = rows.reshape((-1,) + (1,) * (leaf.ndim - 1))
        return leaf * r.astype(leaf.dtype)

    return eqx.tree_at(
        lambda m: (m.weight, m.bias),
        module,
        (scale(module.weight), scale(module.bias)),
        is_leaf=lambda x: x is None,
    )


def gate_updates(updates: Network, gates: Array, regions: Regions) -> Network:
    """Scale the updates of the synapses onto each region `r` by its gate `g_r`.

    With one region per node, every parameter of that node's modules is scaled; with
    columns, the output rows (weight rows and bias entries) of the node's
    `equinox.nn.Linear` layers (alone, or last in an `equinox.nn.Sequential` whose other
    layers hold no parameters) that belong to each column.

    **Arguments:**

    - `updates`: updates shaped like `eqx.filter(net, eqx.is_inexact_array)`.
    - `gates`: `g_r`, shape `(R,)`.
    - `regions`: the [`pcastro.astro.Regions`][] of `net`.

    **Returns:**

    The scaled updates, same structure.

    **Raises:**

    `TypeError` when `updates` are not shaped like the network's parameters;
    `ValueError` for columns on a module whose output units cannot be mapped.
    """
    nodes = _node_of_updates(updates, regions)
    _check_columns(updates, regions)
    new_nodes = []
    for node, c, size, start in zip(
        nodes, regions.columns, regions.sizes, regions.offsets, strict=True
    ):
        g = gates[start : start + c]
        if c == 1:
            node = jax.tree_util.tree_map(lambda u, g=g: u * g[0].astype(u.dtype), node)
        else:
            rows = jnp.repeat(g, size // c)
            modules = tuple(_scale_rows(m, rows) for m in node.modules)
            node = eqx.tree_at(lambda n: n.modules, node, modules)
        new_nodes.append(node)
    return eqx.tree_at(lambda u: u.nodes, updates, tuple(new_nodes))


def _finite_energy(region_energy: Array) -> Array:
    return check_values(
        region_energy,
        lambda xp, e: ~(xp.isfinite(e) & (e >= 0)),
        "`region_energy` must be finite and non-negative (it is 1/2 sum e^2): the error "
        "neurons hold NaN or inf; check the data and the inference status.",
    )


def _batch_energy(region_energy: ArrayLike, num_regions: int) -> Array:
    region_energy = jnp.asarray(region_energy)
    if region_energy.ndim == 2:
        region_energy = jnp.mean(region_energy, axis=0)
    if region_energy.shape != (num_regions,):
        raise ValueError(
            f"`region_energy` has shape {region_energy.shape}, but the gate covers "
            f"{num_regions} regions: pass `region_energies(state, regions)` of shape "
            f"(batch, {num_regions}) or its batch mean of shape ({num_regions},)."
        )
    return _finite_energy(region_energy)


def example_energy(region_energy: ArrayLike, num_regions: int) -> Array:
    """The per-example region energies `E_{b,r}`, shape `(batch, R)`, checked."""
    region_energy = jnp.asarray(region_energy)
    if region_energy.ndim != 2 or region_energy.shape[1] != num_regions:
        raise ValueError(
            f"The per-example gate needs the region energies of every example, shape "
            f"(batch, {num_regions}), as `region_energies(state, regions)` returns them; got "
            f"shape {region_energy.shape}."
        )
    return _finite_energy(region_energy)


def check_ne(ne: ArrayLike, num_regions: int, *, batch: int | None = None) -> Array:
    """NE checked: a scalar or `(R,)`; with `batch` (the per-example gate) also one value
    per example, `(batch, 1)`, or per example and region, `(batch, R)`."""
    ne = jnp.asarray(ne)
    shapes = [(), (num_regions,)]
    if batch is not None:
        shapes += [(batch, 1), (batch, num_regions)]
    if ne.shape not in shapes:
        per_example = (
            ""
            if batch is None
            else f"; per example, shape ({batch}, 1) (e.g. `ne[:, None]`) or ({batch}, "
            f"{num_regions})"
        )
        raise ValueError(
            f"`ne` has shape {ne.shape}; norepinephrine is a scalar or one value per region, "
            f"shape ({num_regions},){per_example}."
        )
    return check_values(
        ne,
        lambda xp, v: ~(xp.isfinite(v) & (v >= 0)),
        "`ne` (norepinephrine) must be finite and non-negative: it is a concentration; "
        "pass 0 for none and a positive value for salience.",
    )


def example_gates(
    astrocytes: Astrocytes, calcium: Array, region_energy: Array, ne: Array
) -> tuple[Array, Array]:
    """The calcium one Euler step would reach from `calcium` if example `b` alone drove
    it, `c_r^b = step(c_r, E_{b,r}, NE_b)`, and its gate `g(c_r^b)`; both `(batch, R)`.

    `region_energy` is `(batch, R)`; `ne` is a scalar, `(R,)`, `(batch, 1)` or
    `(batch, R)`. The one place the per-example gate is computed: the gate's update and
    the gradient weights of [`pcastro.astro.apply_gated_grads`][] both call it.
    """
    calcium = jnp.broadcast_to(calcium, region_energy.shape)
    ne = jnp.broadcast_to(jnp.asarray(ne, calcium.dtype), region_energy.shape)
    examples = astrocytes.step(calcium, region_energy, ne)
    return examples, astrocytes.gate(examples)


def _check_same_astrocytes(recorded: Astrocytes, own: Astrocytes, calcium: Array) -> Array:
    """The gate's state must come from astrocytes configured like the gate's own (e.g. a
    checkpoint of an ablated run loaded into a gated one); returns `calcium`, carrying
    the check when it runs traced."""
    if recorded.ablated != own.ablated:
        raise ValueError(
            f"This optimiser state was made by astrocytes with ablated={recorded.ablated}, "
            f"but the gate has ablated={own.ablated}; build the optimiser with the "
            "astrocytes the state (or checkpoint) was made with."
        )
    if type(recorded.sense) is not type(own.sense):
        raise ValueError(
            "This optimiser state was made by astrocytes that sense "
            f"{type(recorded.sense).__name__}, but the gate's sense "
            f"{type(own.sense).__name__}; build the optimiser with the astrocytes the "
            "state (or checkpoint) was made with."
        )
    names = ("tau_c", "k", "slope", "g0", "c_half", "dt", "theta", "covered")
    differ = [
        jnp.any(jnp.asarray(getattr(recorded, n)) != jnp.asarray(getattr(own, n)))
        for n in names
        if jnp.shape(getattr(recorded, n)) == jnp.shape(getattr(own, n))
    ]
    shapes = [n for n in names if jnp.shape(getattr(recorded, n)) != jnp.shape(getattr(own, n))]
    message = (
        "This optimiser state was made by astrocytes with other hyperparameters than the "
        "gate's own (among tau_c, k, slope, g0, c_half, dt, theta, covered); build the "
        "optimiser with the astrocytes the state (or checkpoint) was made with, e.g. "
        "`optax.tree_utils.tree_get(opt_state, 'astrocytes')`."
    )
    if shapes:
        raise ValueError(message)
    bad = jnp.any(jnp.stack(differ))
    if not isinstance(bad, jax.core.Tracer):
        if bool(bad):
            raise ValueError(message)
        return calcium
    # Traced (inside a jit): checked when it runs.
    return eqx.error_if(calcium, bad, message)


def _check_gate_args(astrocytes, regions) -> None:
    """Types of `scale_by_astrocytes`'s arguments, and `theta`/`covered` per region."""
    if not isinstance(astrocytes, Astrocytes):
        raise TypeError(
            f"`astrocytes` must be a `pcastro.astro.Astrocytes`, got {type(astrocytes).__name__}."
        )
    if not isinstance(regions, Regions):
        raise TypeError(
            "`regions` must be a `pcastro.astro.Regions` from `make_regions(net)`, got "
            f"{type(regions).__name__}."
        )
    num = regions.num_regions
    if astrocytes.theta.shape not in ((), (num,)):
        raise ValueError(
            f"`Astrocytes(theta=...)` has shape {astrocytes.theta.shape}, but there are {num} "
            f"regions; pass a scalar or shape ({num},)."
        )

    if astrocytes.covered.shape not in ((), (num,)):
        raise ValueError(
            f"`Astrocytes(covered=...)` has shape {astrocytes.covered.shape}, but there are "
            f"{num} regions; pass True or a boolean mask of shape ({num},)."
        )


def scale_by_astrocytes(
    astrocytes: Astrocytes, regions: Regions
) -> optax.GradientTransformationExtraArgs:
    r"""The astrocyte gate as an Optax transformation: `u_r <- g(c_r) * u_r`.

    Its state is the calcium `c_r` of every region ([`pcastro.astro.AstrocyteGateState`][]).
    Each `update(updates, state, params, *, region_energy, ne)` first advances the
    calcium one Euler step with the local energies `E_r` and norepinephrine `NE` (see
    [`pcastro.astro.Astrocytes`][]), then scales the updates of the synapses onto each
    region by `g(c_r)`. `region_energy` is the signal the astrocytes sense,
    `region_energies(state, regions, sense=astrocytes.sense)`. `inferred=` (the relaxed
    [`pcastro.PCState`][]) may replace it; the gate then senses `E_r` itself, with its
    astrocytes' `sense`, as [`pcastro.train_step`][] with `ne=` does.

    With neither energies nor NE the calcium is held and only the gate is applied (this
    is how it runs inside [`pcastro.incremental_step`][], which passes no extra
    arguments; set the calcium with `optax.tree_utils.tree_set`); one without the other
    is an error.

    Every pcastro entry point checks that NE goes where a gate listens:
    [`pcastro.train_step`][], [`pcastro.apply_param_grads`][],
    [`pcastro.astro.apply_gated_grads`][] and [`pcastro.astro.consolidate`][] require
    `ne` when the optimiser holds a gate and refuse it when it does not.

    **Where to put it.** Place the gate *after* a stateful optimiser:
    `optax.chain(optax.adam(1e-3), gate)`. Then a closed gate (`g = 0`) gives exactly
    zero parameter change. Before Adam the gate is largely normalised away (Adam divides
    by the running gradient scale, so a gate of 0.01 barely slows learning) and Adam's
    momentum keeps moving a region after its gate closes. Before a stateless linear
    optimiser such as `optax.sgd(lr)` (no momentum) either order is exact.

    **Per example.** With the extra argument `per_example=True`, `update` reads every
    example's `E_{b,r}` (`region_energy` of shape `(batch, R)`, or `inferred`) and NE
    (scalar, `(R,)`, `(batch, 1)` or `(batch, R)`), advances the calcium to the mean of
    the per-example calcium `c_r^b` and scales the updates by the mean gate
    `mean_b g(c_r^b)`. It expects the gate-weighted gradients that
    [`pcastro.astro.apply_gated_grads`][] with `per_example=True` builds (which passes
    this argument, and where the design is explained); given the plain batch-mean
    gradient it would only scale it by the mean gate.

    **Arguments:**

    - `astrocytes`: the [`pcastro.astro.Astrocytes`][] (hyperparameters).
    - `regions`: the [`pcastro.astro.Regions`][] of the network being trained.

    **Returns:**

    An `optax.GradientTransformationExtraArgs`; the extra arguments of `update` are
    `region_energy` (shape `(batch, R)` averaged over the batch, or `(R,)`) or
    `inferred`, `ne` (scalar or `(R,)`), and `per_example` (default False; above).

    **Raises:**

    `ValueError` when `theta` has the wrong number of regions; at `init`/`update`,
    `TypeError`/`ValueError` when the parameters do not match the regions.

    Grounded in Lefton et al. (*Science* 2025); the reference is on
    [`pcastro.astro.Astrocytes`][].
    """
    _check_gate_args(astrocytes, regions)
    num = regions.num_regions

    def init_fn(params):
        _node_of_updates(params, regions)
        _check_columns(params, regions)
        leaves = [x for x in jax.tree_util.tree_leaves(params) if eqx.is_inexact_array(x)]
        dtype = leaves[0].dtype if leaves else jnp.result_type(float)
        # Every hyperparameter as an array leaf (`ablated` stays static), so the state is
        # arrays only, like any Optax state, and a checkpoint records them.
        record = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), astrocytes)
        record = eqx.tree_at(lambda a: a.covered, record, astrocytes.covered)
        return AstrocyteGateState(calcium=jnp.zeros((num,), dtype), astrocytes=record)

    def update_fn(
        updates,
        state,
        params=None,
        *,
        region_energy=None,
        inferred=None,
        ne=None,
        per_example=False,
        **extra_args,
    ):
        del params, extra_args
        calcium = _check_same_astrocytes(state.astrocytes, astrocytes, state.calcium)
        if region_energy is None and inferred is not None:
            region_energy = region_energies(inferred, regions, sense=astrocytes.sense)
        if (region_energy is None) != (ne is None):
            raise ValueError(
                "The astrocyte gate needs both the region energies (`region_energy=` or "
                "`inferred=`, the relaxed `PCState`) and norepinephrine (`ne=`, 0.0 for "
                "none) to advance its calcium, or neither to hold it; got only "
                + ("`ne`." if region_energy is None else "the region energies.")
            )
        if per_example:
            if region_energy is None:
                raise ValueError(
                    "The per-example gate (`per_example=True`) reads every example's region "
                    "energies and NE; pass `region_energy=` (or `inferred=`) and `ne=`."
                )
            energy = example_energy(region_energy, num).astype(calcium.dtype)
            ne = check_ne(ne, num, batch=energy.shape[0])  # pyright: ignore[reportArgumentType]  # given with region_energy
            examples, gates = example_gates(astrocytes, calcium, energy, ne)
            calcium, gates = jnp.mean(examples, axis=0), jnp.mean(gates, axis=0)
            return gate_updates(updates, gates, regions), state._replace(calcium=calcium)
        if region_energy is not None:
            energy = _batch_energy(region_energy, num).astype(calcium.dtype)
            calcium = astrocytes.step(calcium, energy, check_ne(ne, num))  # pyright: ignore[reportArgumentType]  # given with region_energy
        gates = astrocytes.gate(calcium)
        return gate_updates(updates, gates, regions), state._replace(calcium=calcium)

    # optax's ArrayTree types do not cover the Equinox modules of this state and updates.
    return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


def apply_gated_grads(
    net: Network,
    opt_state: Any,
    state: PCState,
    *,
    optimizer: optax.GradientTransformation,
    region_energy: ArrayLike,
    ne: ArrayLike,
    per_example: bool = False,
    regions: Regions | None = None,
    throw: bool = True,
) -> tuple[Network, Any]:
    r"""Learn from inferred states through an optimiser that contains the astrocyte gate.

    `theta <- theta + optimizer(dF/dtheta; region_energy, ne)`, the gradients being the
    local ones of [`pcastro.param_grads`][]; `region_energy` and `ne` reach every
    transformation of the chain that accepts them (the gate).

    **The per-example gate** (`per_example=True`). The batch gate (the default) averages
    `E_r` over the batch and scales the batch-mean gradient by one gate per region, so
    two stimuli of one batch, a current one and a replayed one, cannot be gated apart.
    The per-example gate scales each example's local gradient by its own gate, read
    from that example's `E_{b,r}` and NE, and averages the scaled gradients.

    Calcium stays a slow state, one per region (one astrocyte per region). What example
    `b`'s gate reads is the calcium one Euler step would reach if `b` alone drove it,

    `c_r^b = c_r + (dt / tau_c) * (-c_r + k * NE_b * s(E_{b,r} - theta_r))`,
    `g_{b,r} = g(c_r^b)`,

    and the calcium then advances to their mean, `c_r <- mean_b c_r^b`: one Euler step
    driven by the mean of the per-example drives `k * NE_b * s(E_{b,r} - theta_r)`. The
    astrocyte integrates what it senses of each stimulus: unlike the drive of the mean
    energy, a stimulus above threshold drives calcium even when the batch mean is below
    it, one below threshold adds nothing, and NE may differ per stimulus. It costs
    `batch x R` scalars, and with a batch of one it is the batch gate exactly.

    The gate stays *after* the optimiser, so that a shut region still changes by exactly
    nothing (see [`pcastro.astro.scale_by_astrocytes`][]): the optimiser receives the
    gate-weighted mean gradient `(1/B) sum_b w_{b,r} dF_b/dtheta_r` with
    `w_{b,r} = g_{b,r} / gbar_r` ([`pcastro.astro.gated_param_grads`][]), and the gate
    scales its output by the mean gate `gbar_r = mean_b g_{b,r}`. Through a stateless
    linear optimiser (`optax.sgd`) the update is exactly
    `-lr * (1/B) sum_b g_{b,r} dF_b/dtheta_r`; through Adam the open examples set the
    direction and `gbar_r` the size. No per-example gradient is formed (one backward
    pass; see [`pcastro.astro.gated_param_grads`][] for the memory). With ablated
    astrocytes the gradient is [`pcastro.param_grads`][]'s and the gate 1: plain PC
    learning, bit for bit, whatever the NE.

    **Arguments:**

    - `net`, `opt_state`: the network and `optimizer.init(eqx.filter(net, eqx.is_inexact_array))`.
    - `state`: the inferred batched states.
    - `optimizer`: e.g. `optax.chain(optax.adam(1e-3), scale_by_astrocytes(astro, regions))`.
      It must contain the gate: for a plain optimiser use [`pcastro.apply_param_grads`][].
    - `region_energy`: `E_r` driving the calcium, usually
      `region_energies(state, regions)`, shape `(batch, R)` (per example with
      `per_example=True`, else averaged over the batch) or `(R,)` (batch gate only).
    - `ne`: norepinephrine (0.0 for none): a scalar or one value per region, `(R,)`; with
      `per_example=True` also one value per example, `(batch, 1)`, or per example and
      region, `(batch, R)`.
    - `per_example`: gate every example by its own `E_{b,r}` and NE (above); needs
      `regions`.
    - `regions`: the [`pcastro.astro.Regions`][] the gate was built with (only with
      `per_example=True`).
    - `throw`: raise when the update is non-finite or larger than the parameters.

    **Returns:**

    `(net, opt_state)`.

    **Raises:**

    `ValueError` when `optimizer` holds no astrocyte gate (NE would change nothing), for
    `per_example=True` without `regions` (or `regions` without it), and for
    `region_energy` or `ne` of a shape the gate cannot read.
    """
    check_gate_arguments(opt_state, ne, "apply_gated_grads")
    if per_example:
        from ._per_example import apply_per_example  # it builds on this module

        return apply_per_example(
            net,
            opt_state,
            state,
            optimizer=optimizer,
            regions=regions,
            region_energy=region_energy,
            ne=ne,
            throw=throw,
        )
    if regions is not None:
        raise ValueError(
            "`apply_gated_grads(regions=...)` is read only by the per-example gate; pass "
            "`per_example=True` with it, or leave `regions` out for the batch gate."
        )
    return apply_param_grads(
        net,
        opt_state,
        state,
        optimizer=optax.with_extra_args_support(optimizer),
        extra_args={"region_energy": jnp.asarray(region_energy), "ne": jnp.asarray(ne)},
        throw=throw,
    )
