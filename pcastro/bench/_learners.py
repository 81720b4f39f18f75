"""Learners: one strategy class per benchmarked method, shared by every protocol.

Every trained method uses the same Equinox modules (a tanh MLP with a cross-entropy top
node); only the learning rule differs. A learner's state is what it carries from one
presentation to the next (network and optimiser state, or a memory of images); it is
written for one episode and vmapped over episodes and learning rates by the protocols.
"""

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from .. import (
    RESULTS,
    AbstractSolver,
    AdaptiveEuler,
    CrossEntropy,
    Network,
    infer,
    init_state,
    mlp,
    train_step,
)
from .._custom_types import Array, ArrayLike
from .._learning import _apply as checked_apply, raise_on_params
from ..astro import (
    Astrocytes,
    consolidate,
    make_regions,
    make_store,
    region_energies,
    scale_by_astrocytes,
    snapshot,
)
from ..baselines import backprop_step, nearest_class_mean, pixel_nearest_neighbour


def make_model(key, sizes) -> Network:
    """The shared architecture: tanh MLP with a cross-entropy output node."""
    return mlp(list(sizes), key=key, output_energy=CrossEntropy())


def params_of(net):
    return eqx.filter(net, eqx.is_inexact_array)


def default_astrocytes(
    *, ablated: bool = False, covered: ArrayLike = True, sense=None
) -> Astrocytes:
    """The benchmarks' astrocytes: faster calcium and a lower half-gate than the library
    defaults, so that one salient presentation opens the gate (`sense`: the library's
    default, the squared error, unless given)."""
    extra = {} if sense is None else {"sense": sense}
    return Astrocytes(tau_c=2.0, c_half=0.05, ablated=ablated, covered=covered, **extra)


# ---- update rules ---------------------------------------------------------------------


class AbstractRule(eqx.Module):
    """One parameter update on a batch; also what a network is pretrained with."""

    @abc.abstractmethod
    def update(
        self, net, opt_state, x, y, *, optimizer, throw: bool = False
    ) -> tuple[Network, Any, Array]:
        """Returns `(net, opt_state, status)` after one update on `(x, y)`; `status` is a
        [`pcastro.RESULTS`][] code, for the protocols to count (never to drop)."""


class PCRule(AbstractRule):
    """Predictive coding: `steps` steps of inference with `solver` (by default the
    curvature-following [`pcastro.AdaptiveEuler`][]), then one local update. `unroll`
    compiles the steps without a loop (faster for convolutions on CPU)."""

    steps: int = eqx.field(static=True)
    solver: AbstractSolver = AdaptiveEuler()
    unroll: bool = eqx.field(static=True, default=False)

    def update(self, net, opt_state, x, y, *, optimizer, throw: bool = False):
        net, opt_state, info = train_step(
            net,
            opt_state,
            x,
            y,
            optimizer=optimizer,
            solver=self.solver,
            steps=self.steps,
            throw=throw,
            unroll=self.unroll,
        )
        return net, opt_state, info.status

    def relax(self, net, x, y):
        """The inferred states with `x` and `y` clamped, and the solve's status."""
        return self.resume(net, init_state(net, x, y), steps=self.steps)

    def resume(self, net, state, *, steps: int):
        """`steps` steps of inference from the given states (e.g. recalled from a store
        with states), and the solve's status."""
        solution = infer(
            net, state, solver=self.solver, steps=steps, throw=False, unroll=self.unroll
        )
        return solution.state, solution.status


class BackpropRule(AbstractRule):
    """Backprop on the same modules (the network's feedforward pass and top energy)."""

    def update(self, net, opt_state, x, y, *, optimizer, throw: bool = False):
        net, opt_state, loss = backprop_step(net, opt_state, x, y, optimizer=optimizer)
        # No solve to report on, but a non-finite loss or weight is counted, not dropped.
        leaves = jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))
        finite = jnp.isfinite(loss) & jnp.all(jnp.stack([jnp.isfinite(a).all() for a in leaves]))
        status = jnp.where(finite, RESULTS.successful, RESULTS.nonfinite_update)
        return raise_on_params(net, status, throw), opt_state, status


def pretrain(rule: AbstractRule, net, x, y, *, epochs: int, seed: int, batch: int = 64):
    """`epochs` shuffled mini-batch epochs of `rule` with Adam(1e-3) (not vmapped: once per
    rule and run)."""
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params_of(net))
    step = eqx.filter_jit(
        lambda n, s, bx, by: rule.update(n, s, bx, by, optimizer=optimizer, throw=True)[:2]
    )
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for b in range(0, len(perm) - batch + 1, batch):
            idx = perm[b : b + batch]
            net, opt_state = step(net, opt_state, x[idx], y[idx])
    return net


def _predict(net, x):
    # As `pcastro.accuracy` does, so that scores equal the library's accuracy.
    return jnp.argmax(jax.vmap(net)(jnp.asarray(x, net.dtype)), axis=-1)


def gated_update(rule: PCRule, net, opt_state, x, y, *, optimizer, regions, ne):
    """One PC update through an astrocyte-gated optimiser, fed the batch's `E_r` and NE:
    `(net, opt_state, status)`."""
    relaxed, solved = rule.relax(net, x, y)
    return local_update(
        net,
        opt_state,
        relaxed,
        solved,
        optimizer=optimizer,
        region_energy=region_energies(relaxed, regions),
        ne=ne,
    )


# ---- the learner contract -------------------------------------------------------------


class Trained(eqx.Module):
    """The state of a parametric learner: its network, learning rate and optimiser state,
    and how many of its updates so far failed (a diverged, oscillated or non-finite solve,
    or an update that failed its check; `None` where not counted)."""

    net: Network
    lr: Any
    opt_state: Any
    failed: Any = None


def counted(state: Trained, status) -> Any:
    """`state.failed` with one more failure if `status` is not successful."""
    if state.failed is None:
        return None
    return state.failed + (status != RESULTS.successful).astype(state.failed.dtype)


def local_update(net, opt_state, relaxed, solved, *, optimizer, **extra):
    """One local weight update at the inferred states `relaxed` (with the status `solved`
    of their inference): `(net, opt_state, status)`, the status the worse of the two.
    `extra` (region energies and NE) reach an astrocyte-gated optimiser, as
    `apply_gated_grads` passes them."""
    if extra:
        optimizer = optax.with_extra_args_support(optimizer)
        extra = {k: jnp.asarray(v) for k, v in extra.items()}
    net, opt_state, updated = checked_apply(net, opt_state, relaxed, optimizer=optimizer, **extra)
    return net, opt_state, jnp.where(solved != RESULTS.successful, solved, updated)


class Memory(eqx.Module):
    """The state of a non-parametric learner: the images it has seen."""

    x: Any
    y: Any


class AbstractLearner(eqx.Module):
    """A benchmarked method. Protocols call only these methods, so a new method is one
    subclass and runs in every protocol.

    Every method is written for one episode; protocols vmap it over episodes and
    learning rates. Besides the methods below, a learner declares:

    - `name`: its name in `--methods` and in `results.json`;
    - `rule`: the update rule it is pretrained with (`None`: nothing to pretrain);
      learners with equal rules share one pretrained network;
    - `episodes_in_parallel`: whether test episodes are vmapped (`False`: one after
      another, for methods whose memory of base images makes all episodes too large);
    - `needs_base`: whether it only makes sense with base classes (transfer).
    """

    name: ClassVar[str]
    episodes_in_parallel: ClassVar[bool]
    needs_base: ClassVar[bool]
    rule: eqx.AbstractVar[AbstractRule | None]

    @abc.abstractmethod
    def grid(self) -> dict[str, tuple]:
        """Hyperparameters tuned on validation: name -> values; `lr` is vmapped, the rest
        are static. Empty: nothing to tune. The order decides ties (first axis slowest)."""

    @abc.abstractmethod
    def start(self, net, lr, *, base=None):
        """The state before learning: from `net` (fresh or pretrained), learning rate
        `lr`, and the base images `(x, y)` (numpy, transfer only) that the method may keep."""

    @abc.abstractmethod
    def learn(self, state, x, y, hp: dict, *, key, one_at_a_time: bool = False):
        """Learn a support set `(x, y)` with hyperparameters `hp`. With `one_at_a_time`, the
        examples arrive one by one, in order (a one-shot stream); else all at once."""

    @abc.abstractmethod
    def predict(self, state, x):
        """Predicted labels of the rows of `x`."""

    @abc.abstractmethod
    def sweep(self, net, x, y, lr, evaluate, *, key, base=None, one_at_a_time=False):
        """`evaluate(state)` after `learn` with every static setting of `grid()` at
        learning rate `lr`: an array with one leading axis per static grid entry."""


class _AbstractGradientLearner(AbstractLearner):
    """Learners that make `updates` gradient updates per presentation."""

    lrs: eqx.AbstractVar[tuple[float, ...]]
    updates: eqx.AbstractVar[tuple[int, ...]]
    episodes_in_parallel: ClassVar[bool] = True
    needs_base: ClassVar[bool] = False

    @abc.abstractmethod
    def optimizer(self, lr, net) -> optax.GradientTransformation:
        """The optimiser at learning rate `lr` (Adam, gated if the learner has astrocytes)."""

    @abc.abstractmethod
    def step(self, state: Trained, x, y, *, key) -> tuple[Trained, Any]:
        """One update on `(x, y)`; returns the state and the next key."""

    def grid(self):
        return {"lr": self.lrs, "updates": self.updates}

    def start(self, net, lr, *, base=None):
        opt_state = self.optimizer(lr, net).init(params_of(net))
        return Trained(net, lr, opt_state, jnp.zeros((), jnp.int32))

    def learn(self, state, x, y, hp, *, key, one_at_a_time=False):
        if not one_at_a_time:
            return self._repeat(state, key, x, y, hp["updates"])[0]

        def present(carry: tuple[Any, Any], item):
            state, key, _ = self._repeat(*carry, item[0][None], item[1][None], hp["updates"])
            return (state, key), None

        (state, _), _ = lax.scan(present, (state, key), (x, y))
        return state

    def predict(self, state, x):
        return _predict(state.net, x)

    def sweep(self, net, x, y, lr, evaluate, *, key, base=None, one_at_a_time=False):
        state = self.start(net, lr, base=base)
        if one_at_a_time:
            hps = [{"lr": lr, "updates": u} for u in self.updates]
            return jnp.stack(
                [evaluate(self.learn(state, x, y, hp, key=key, one_at_a_time=True)) for hp in hps]
            )
        # One batch: the network after u updates is a prefix of the longest run, so one
        # learning curve scores every update count.
        _, _, curve = self._repeat(state, key, x, y, max(self.updates), observe=evaluate)
        return curve[np.asarray(self.updates) - 1]  # pyright: ignore[reportOptionalSubscript]  # observed

    def _repeat(self, state, key, x, y, n, *, observe=None):
        """`n` updates on `(x, y)`; with `observe`, also `observe(state)` after each."""

        def body(carry, _):
            state, key = self.step(carry[0], x, y, key=carry[1])
            return (state, key), (observe(state) if observe else None)

        (state, key), trace = lax.scan(body, (state, key), None, length=n)
        return state, key, trace


class PC(_AbstractGradientLearner):
    """Predictive coding, optionally through an astrocyte-gated optimiser (fed each batch's
    local errors `E_r` and the NE level `ne` at presentation)."""

    name: ClassVar[str] = "pc"
    rule: PCRule
    lrs: tuple[float, ...] = eqx.field(static=True)
    updates: tuple[int, ...] = eqx.field(static=True)
    astrocytes: Astrocytes | None = None
    ne: float = 1.0

    def optimizer(self, lr, net):
        if self.astrocytes is None:
            return optax.adam(lr)
        regions = make_regions(net)
        return optax.chain(optax.adam(lr), scale_by_astrocytes(self.astrocytes, regions))

    def step(self, state, x, y, *, key):
        optimizer = self.optimizer(state.lr, state.net)
        if self.astrocytes is None:
            net, opt_state, status = self.rule.update(
                state.net, state.opt_state, x, y, optimizer=optimizer
            )
        else:
            net, opt_state, status = gated_update(
                self.rule,
                state.net,
                state.opt_state,
                x,
                y,
                optimizer=optimizer,
                regions=make_regions(state.net),
                ne=self.ne,
            )
        return Trained(net, state.lr, opt_state, counted(state, status)), key


class Backprop(_AbstractGradientLearner):
    """Backprop on the same modules, Adam."""

    name: ClassVar[str] = "backprop"
    lrs: tuple[float, ...] = eqx.field(static=True)
    updates: tuple[int, ...] = eqx.field(static=True)
    rule: BackpropRule = BackpropRule()

    def optimizer(self, lr, net):
        return optax.adam(lr)

    def step(self, state, x, y, *, key):
        optimizer = self.optimizer(state.lr, state.net)
        net, opt_state, status = self.rule.update(
            state.net, state.opt_state, x, y, optimizer=optimizer
        )
        return Trained(net, state.lr, opt_state, counted(state, status)), key


class BackpropReplay(_AbstractGradientLearner):
    """Backprop whose every update also sees `batch` images drawn without replacement from
    a raw-image buffer of the first `per_class` base training images of each class."""

    name: ClassVar[str] = "backprop_replay"
    needs_base: ClassVar[bool] = True
    lrs: tuple[float, ...] = eqx.field(static=True)
    updates: tuple[int, ...] = eqx.field(static=True)
    per_class: int = eqx.field(static=True, default=10)
    batch: int = eqx.field(static=True, default=10)
    rule: BackpropRule = BackpropRule()

    def optimizer(self, lr, net):
        return optax.adam(lr)

    def start(self, net, lr, *, base=None):
        if base is None:
            raise ValueError(
                "`backprop_replay` replays base-class images, so it needs base classes: it "
                "runs in the transfer protocol only."
            )
        bx, by = base
        idx = np.concatenate([np.flatnonzero(by == c)[: self.per_class] for c in np.unique(by)])
        return _Replaying(
            net, lr, optax.adam(lr).init(params_of(net)), jnp.asarray(bx[idx]), jnp.asarray(by[idx])
        )

    def step(self, state: "_Replaying", x, y, *, key):
        key, sub = jax.random.split(key)
        idx = jax.random.choice(sub, state.buffer_x.shape[0], (self.batch,), replace=False)
        x = jnp.concatenate([x, state.buffer_x[idx]])
        y = jnp.concatenate([y, state.buffer_y[idx]])
        optimizer = self.optimizer(state.lr, state.net)
        net, opt_state, _ = self.rule.update(state.net, state.opt_state, x, y, optimizer=optimizer)
        return eqx.tree_at(lambda s: (s.net, s.opt_state), state, (net, opt_state)), key


class _Replaying(eqx.Module):
    net: Network
    lr: Any
    opt_state: Any
    buffer_x: Any
    buffer_y: Any


class PCAstro(AbstractLearner):
    """PC with astrocytes and the store: each support stimulus is presented once, in order,
    with one gated update under NE (a salient presentation) and snapshotted with its local
    errors; the store is then consolidated for `rounds` rounds (priority replay gated by
    the stored `E_r` and NE, stored states, discard below `tol`)."""

    name: ClassVar[str] = "pc_astro"
    episodes_in_parallel: ClassVar[bool] = True
    needs_base: ClassVar[bool] = False
    rule: PCRule
    lrs: tuple[float, ...] = eqx.field(static=True)
    rounds: tuple[int, ...] = eqx.field(static=True)
    astrocytes: Astrocytes = eqx.field(default_factory=default_astrocytes)
    ne: float = 1.0
    tol: float = 1e-3

    def grid(self):
        return {"rounds": self.rounds, "lr": self.lrs}

    def optimizer(self, lr, net):
        """Adam at `lr` followed by the astrocyte gate over `net`'s per-layer regions."""
        regions = make_regions(net)
        return optax.chain(optax.adam(lr), scale_by_astrocytes(self.astrocytes, regions))

    def start(self, net, lr, *, base=None):
        opt_state = self.optimizer(lr, net).init(params_of(net))
        return Trained(net, lr, opt_state, jnp.zeros((), jnp.int32))

    def learn(self, state, x, y, hp, *, key, one_at_a_time=False):
        # Astrocytes learn one salient stimulus at a time, whatever the protocol allows.
        net, regions = state.net, make_regions(state.net)
        optimizer = self.optimizer(state.lr, net)

        def present(carry, item):
            net, opt_state, failed = carry
            net, opt_state, status = gated_update(
                self.rule,
                net,
                opt_state,
                item[0][None],
                item[1][None],
                optimizer=optimizer,
                regions=regions,
                ne=self.ne,
            )
            return (net, opt_state, failed + (status != RESULTS.successful)), None

        carry = (net, state.opt_state, state.failed)
        (net, opt_state, failed), _ = lax.scan(present, carry, (x, y))
        store = make_store(net, regions, capacity=x.shape[0])
        relaxed, solved = self.rule.relax(net, x, y)
        failed = failed + (solved != RESULTS.successful)
        store, _ = snapshot(store, relaxed, step=self.rule.steps)
        # consolidate raises on a failed update (throw=True): nothing is learned silently.
        net, opt_state, _, _ = consolidate(
            net,
            opt_state,
            store,
            optimizer=optimizer,
            ne=self.ne,
            steps=self.rule.steps,
            rounds=hp["rounds"],
            tol=self.tol,
            fresh=False,
            solver=self.rule.solver,
        )
        return Trained(net, state.lr, opt_state, failed)

    def predict(self, state, x):
        return _predict(state.net, x)

    def sweep(self, net, x, y, lr, evaluate, *, key, base=None, one_at_a_time=False):
        state = self.start(net, lr, base=base)
        return jnp.stack(
            [evaluate(self.learn(state, x, y, {"rounds": r}, key=key)) for r in self.rounds]
        )


class _AbstractMemoryLearner(AbstractLearner):
    """Non-parametric learners: they remember every image they are shown."""

    rule: None = None
    episodes_in_parallel: ClassVar[bool] = False
    needs_base: ClassVar[bool] = False

    def grid(self):
        return {}

    def start(self, net, lr, *, base=None):
        return None if base is None else Memory(jnp.asarray(base[0]), jnp.asarray(base[1]))

    def learn(self, state, x, y, hp, *, key, one_at_a_time=False):
        if state is None:
            return Memory(x, y)
        return Memory(jnp.concatenate([state.x, x]), jnp.concatenate([state.y, y]))

    def sweep(self, net, x, y, lr, evaluate, *, key, base=None, one_at_a_time=False):
        return evaluate(self.learn(self.start(net, lr, base=base), x, y, {}, key=key))


class PixelNN(_AbstractMemoryLearner):
    """The label of the nearest remembered image in pixel space."""

    name: ClassVar[str] = "pixel_nn"

    def predict(self, state, x):
        return pixel_nearest_neighbour(state.x, state.y, x)


class ClassMean(_AbstractMemoryLearner):
    """The label of the nearest class mean of the remembered images, in pixel space."""

    name: ClassVar[str] = "class_mean"
    num_classes: int = eqx.field(static=True, default=10)

    def predict(self, state, x):
        return nearest_class_mean(state.x, state.y, x, num_classes=self.num_classes)


def accuracy(learner: AbstractLearner, state, x, y):
    return jnp.mean(learner.predict(state, x) == y)


LEARNERS: dict[str, type[AbstractLearner]] = {
    cls.name: cls for cls in (PC, PCAstro, Backprop, BackpropReplay, PixelNN, ClassMean)
}
