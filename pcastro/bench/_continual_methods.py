"""Continual-learning methods: one strategy class per method, on the same Equinox modules.

A method sees one mini-batch of the current context per iteration and decides what it
learns from it: the batch alone (fine-tuning; joint training is fine-tuning on a stream of
all contexts so far), the batch plus `replay_batch` exemplars from a reservoir buffer of
raw images (experience replay, uniform or loss-prioritised), or the batch plus
`replay_batch` stimuli recalled from the astrocyte store (PC only). Every memory method
replays the same number of stimuli per iteration, all in the one update of that iteration.

Targets are one-hot rows; an all-zero target row has zero cross-entropy, hence zero
gradient, which is how an empty memory replays nothing on the very first iteration.
"""

import abc
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax

from .. import RESULTS, init_state
from ..astro import (
    Astrocytes,
    RejectWhenFull,
    discard,
    footprint_bytes,
    make_regions,
    make_store,
    overwrite,
    recall,
    region_energies,
    scale_by_astrocytes,
    snapshot,
)
from ..astro._per_example import apply_example_grads
from ._learners import AbstractRule, PCRule, local_update, params_of


class Plain(eqx.Module):
    """State of a method without memory."""

    net: Any
    opt_state: Any


class Buffered(eqx.Module):
    """State of a replay method: raw exemplars, their priorities, and how many stimuli
    have been presented (for reservoir sampling)."""

    net: Any
    opt_state: Any
    x: Any
    y: Any
    priority: Any
    seen: Any


class Stored(eqx.Module):
    """State of a store method: the astrocyte store and how many stimuli were presented."""

    net: Any
    opt_state: Any
    store: Any
    seen: Any


def _seen_index(seen, batch):
    return seen + jnp.arange(batch)


def reservoir_slots(key, seen, batch: int, capacity: int):
    """Reservoir sampling (Vitter's algorithm R) for a batch: the slot of each incoming
    stimulus, `capacity` (out of range, dropped by `mode="drop"`) for those not kept."""
    n = _seen_index(seen, batch)
    j = jax.random.randint(key, (batch,), 0, n + 1)
    return jnp.where(n < capacity, n, jnp.where(j < capacity, j, capacity))


class AbstractContinualLearner(eqx.Module):
    """A continual-learning method: `init` a state from a fresh network, `step` on each
    mini-batch of the stream, read the network back with `network`.

    Besides the methods below a learner declares `kind` (its name in `--methods`
    without the rule prefix) and `memory_items` (stimuli it can hold, 0 for none).
    """

    kind: ClassVar[str]
    rule: eqx.AbstractVar[AbstractRule]
    lr: eqx.AbstractVar[float]

    def optimizer(self, net) -> optax.GradientTransformation:
        """Adam at `lr` (the store methods with astrocytes chain the gate after it)."""
        return optax.adam(self.lr)

    @abc.abstractmethod
    def init(self, net, *, key):
        """The state before the first context."""

    @abc.abstractmethod
    def step(self, state, x, y, *, key, iteration=None):
        """One iteration on the batch `(x, y)` (one-hot `y`) of the current context:
        returns `(state, status)`, `status` the [`pcastro.RESULTS`][] code of the
        iteration's inference and update (the worst of them), which the protocol
        counts. `iteration` is the iteration's index in the whole stream, the same for
        every seed: a learner that works on a schedule branches on it, which stays a
        branch (not a select that computes both sides) when seeds are vmapped. Left out
        (a loop over one seed), it is counted from the batches the state has seen."""

    def network(self, state):
        """The network a training state holds (what is evaluated on the test images)."""
        return state.net

    def memory_bytes(self, net) -> int:
        """Bytes of the method's memory (0 without one)."""
        return 0


class FineTune(AbstractContinualLearner):
    """Fine-tuning: learn each batch as it comes, nothing kept (the lower bound; on the
    joint stream, the upper bound)."""

    kind: ClassVar[str] = "finetune"
    rule: AbstractRule
    lr: float = eqx.field(static=True)

    def init(self, net, *, key):
        """The state before the first context."""
        return Plain(net, self.optimizer(net).init(params_of(net)))

    def step(self, state, x, y, *, key, iteration=None):
        """One iteration on the batch `(x, y)` of the current context."""
        net, opt_state, status = self.rule.update(
            state.net, state.opt_state, x, y, optimizer=self.optimizer(state.net)
        )
        return Plain(net, opt_state), status


def _cross_entropy(net, x, y):
    p = jax.vmap(net)(x)
    return -jnp.sum(y * jnp.log(jnp.clip(p, 1e-12, 1.0)), axis=-1)


class ExperienceReplay(AbstractContinualLearner):
    """Experience replay: a reservoir buffer of `memory` raw exemplars (image, one-hot
    label); each update learns the current batch together with `replay_batch` exemplars
    drawn with replacement, uniformly, or (`prioritised`) in proportion to
    `priority ** alpha` where the priority is the exemplar's cross-entropy when it was
    last seen: when it was stored (after that update) or last replayed (before it), a
    loss-prioritised replay in the manner of prioritised experience replay.

    ??? cite "References"

        ```bibtex
        @article{chaudhry2019tiny,
            title={On Tiny Episodic Memories in Continual Learning},
            author={Chaudhry, Arslan and Rohrbach, Marcus and Elhoseiny, Mohamed and
                    Ajanthan, Thalaiyasingam and Dokania, Puneet K. and Torr, Philip H. S.
                    and Ranzato, Marc'Aurelio},
            journal={arXiv:1902.10486},
            year={2019}
        }
        @inproceedings{schaul2016prioritized,
            title={Prioritized Experience Replay},
            author={Schaul, Tom and Quan, John and Antonoglou, Ioannis and Silver, David},
            booktitle={ICLR},
            year={2016}
        }
        ```
    """

    kind: ClassVar[str] = "er"
    rule: AbstractRule
    lr: float = eqx.field(static=True)
    memory: int = eqx.field(static=True)
    replay_batch: int = eqx.field(static=True)
    prioritised: bool = eqx.field(static=True, default=False)
    alpha: float = eqx.field(static=True, default=0.6)

    def init(self, net, *, key):
        """The state before the first context."""
        features, classes = net.shapes[0][0], net.shapes[-1][0]
        return Buffered(
            net,
            self.optimizer(net).init(params_of(net)),
            jnp.zeros((self.memory, features), net.dtype),
            jnp.zeros((self.memory, classes), net.dtype),
            jnp.ones((self.memory,), net.dtype),
            jnp.zeros((), jnp.int32),
        )

    def step(self, state, x, y, *, key, iteration=None):
        """One iteration on the batch `(x, y)` of the current context."""
        k_draw, k_keep = jax.random.split(key)
        filled = jnp.arange(self.memory) < state.seen
        weight = self.alpha * jnp.log(state.priority) if self.prioritised else 0.0
        logits = jnp.where(filled, weight, -jnp.inf)
        logits = jnp.where(jnp.any(filled), logits, 0.0)
        idx = jax.random.categorical(k_draw, logits, shape=(self.replay_batch,))
        rx, ry = state.x[idx], state.y[idx] * jnp.any(filled)
        priority = state.priority
        if self.prioritised:
            loss = _cross_entropy(state.net, rx, ry)
            priority = priority.at[idx].set(jnp.where(jnp.any(filled), loss + 1e-3, 1.0))
        net, opt_state, status = self.rule.update(
            state.net,
            state.opt_state,
            jnp.concatenate([x, rx]),
            jnp.concatenate([y, ry]),
            optimizer=self.optimizer(state.net),
        )
        slots = reservoir_slots(k_keep, state.seen, x.shape[0], self.memory)
        # A new exemplar's priority is its loss after this update (a cheap forward pass).
        newest = _cross_entropy(net, x, y) + 1e-3 if self.prioritised else 1.0
        return Buffered(
            net,
            opt_state,
            state.x.at[slots].set(x, mode="drop"),
            state.y.at[slots].set(y, mode="drop"),
            priority.at[slots].set(newest, mode="drop"),
            state.seen + x.shape[0],
        ), status

    def memory_bytes(self, net) -> int:
        """Bytes of the method's memory."""
        return exemplar_bytes(net) * self.memory


def exemplar_bytes(net) -> int:
    """Bytes of one raw exemplar as the buffer holds it: the image and its label, in the
    network's dtype (the priority of the prioritised buffer is not counted)."""
    itemsize = jnp.dtype(net.dtype).itemsize
    return (net.shapes[0][0] + 1) * itemsize


class AstrocyteStore(AbstractContinualLearner):
    """PC with the astrocyte store as the memory.

    Every presented stimulus is snapshotted with its local errors `E_r` (measured at its
    inferred states) into a store of `capacity` slots; which stimuli stay is decided by
    reservoir sampling, as for the exemplar buffer, so that the memory methods differ
    only in what they replay and how. Each iteration recalls `replay_batch` slots (fresh
    feedforward starts) and learns them with the current batch in one PC update:

    - `priority`: slots are drawn in proportion to `(sum_r E_r) ** alpha` of their
      stored `E_r` (else uniformly; `alpha = 0` is uniform, `alpha < 1` flattens the
      priorities as prioritised experience replay does);
    - `astrocytes`: the update goes through the astrocyte gate, its calcium driven by the
      batch's mean `E_r` (the replayed slots' stored values) under norepinephrine `ne`
      (None: no gate);
    - `refresh`: the replayed slots' `E_r` (and so their priority and the gate's drive)
      are rewritten with the values measured at this replay (else they stay as stored
      at the snapshot: stale);
    - `refresh_every`: every that many iterations (0: never), before the draw, every
      occupied slot's `E_r` and priority are measured again at the current network: its
      stimulus re-presented from a fresh feedforward start and relaxed by the rule, as a
      replayed one is (a store with states also keeps the new states). The cost is
      `capacity` relaxations every `refresh_every` iterations; the solve's status is
      counted with the update's;
    - `resume_steps`: replay continues from each slot's stored states for that many
      inference steps (0: every replay starts fresh, from a feedforward pass, and runs
      the rule's steps); the relaxed states and their `E_r` are written back, so the next
      recall continues where this one stopped (the seed's efficiency argument: a
      recalled stimulus comes back with its states). Needs a store with states;
    - `tol`: a replayed slot whose measured `E_r` is below `tol` in every region is
      discarded, its slot freed for new stimuli (0: never);
    - `per_example`: gate every stimulus of the update, current or replayed, by its own
      `E_r` (`apply_gated_grads(per_example=True)`: the astrocyte reads each stimulus's
      error, and a replayed slot whose error is below threshold adds nothing); else one
      gate per region from the batch's mean `E_r`. Needs `astrocytes`;
    - `states`: the store keeps every slot's free states (True), or only its clamps,
      `E_r`, step count and priority (False, `make_store(..., states=False)`). Replay
      starts fresh either way, so the stored states are never read here; without them
      a slot costs about half the bytes, and the same memory holds about twice the
      stimuli. At equal capacity both give the same run, bit for bit.

    With `Astrocytes(ablated=True)` the gate is exactly 1 and the method equals the same
    store replay without a gate, bit for bit.
    """

    kind: ClassVar[str] = "store"
    rule: PCRule
    lr: float = eqx.field(static=True)
    capacity: int = eqx.field(static=True)
    replay_batch: int = eqx.field(static=True)
    priority: bool = eqx.field(static=True, default=False)
    alpha: float = eqx.field(static=True, default=1.0)
    astrocytes: Astrocytes | None = None
    ne: float = eqx.field(static=True, default=1.0)
    refresh: bool = eqx.field(static=True, default=False)
    refresh_every: int = eqx.field(static=True, default=0)
    resume_steps: int = eqx.field(static=True, default=0)
    tol: float = eqx.field(static=True, default=0.0)
    states: bool = eqx.field(static=True, default=True)
    per_example: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if self.resume_steps and not self.states:
            raise ValueError(
                "`AstrocyteStore(resume_steps=...)` continues replay from stored states; "
                "it needs a store with states (`states=True`)."
            )
        if self.per_example and self.astrocytes is None:
            raise ValueError(
                "`AstrocyteStore(per_example=True)` gates each stimulus by its astrocytes; "
                "pass `astrocytes=`."
            )

    def optimizer(self, net):
        """Adam at `lr`, followed by the astrocyte gate when the method has one."""
        if self.astrocytes is None:
            return optax.adam(self.lr)
        return optax.chain(
            optax.adam(self.lr), scale_by_astrocytes(self.astrocytes, make_regions(net))
        )

    def init(self, net, *, key):
        """The state before the first context."""
        store = make_store(net, make_regions(net), capacity=self.capacity, states=self.states)
        opt_state = self.optimizer(net).init(params_of(net))
        return Stored(net, opt_state, store, jnp.zeros((), jnp.int32))

    def step(self, state, x, y, *, key, iteration=None):
        """One iteration on the batch `(x, y)` of the current context."""
        k_draw, k_keep, k_victim = jax.random.split(key, 3)
        net, store, batch = state.net, state.store, x.shape[0]
        regions = store.regions
        refreshed = jnp.asarray(RESULTS.successful)
        if self.refresh_every:
            # Branch on the stream's iteration, the same for every seed: a condition read
            # from the (vmapped) state would make every iteration re-measure the store.
            iteration = state.seen // batch if iteration is None else iteration
            store, refreshed = lax.cond(
                iteration % self.refresh_every == 0,
                lambda s: _remeasure(s, net, self.rule),
                lambda s: (s, jnp.asarray(RESULTS.successful)),
                store,
            )
            # An empty store (the first iteration) has nothing measured: no status.
            refreshed = jnp.where(jnp.any(store.occupied), refreshed, RESULTS.successful)
        occupied = store.occupied
        weight = self.alpha * jnp.log(jnp.maximum(store.priority, 1e-12)) if self.priority else 0.0
        logits = jnp.where(occupied, weight, -jnp.inf)
        logits = jnp.where(jnp.any(occupied), logits, 0.0)
        slots = jax.random.categorical(k_draw, logits, shape=(self.replay_batch,))
        relaxed, solved = self._relax(net, store, slots, x, y)
        measured = region_energies(relaxed, regions)
        replayed = measured[batch:] if self.refresh else store.region_energy[slots]
        optimizer = self.optimizer(net)
        extra = {}
        if self.astrocytes is not None:
            extra = dict(region_energy=jnp.concatenate([measured[:batch], replayed]), ne=self.ne)
        # As `train_step(throw=False)`: the update is applied and its status counted.
        if self.per_example:
            net, opt_state, updated = apply_example_grads(
                net, state.opt_state, relaxed, optimizer=optimizer, regions=regions, **extra
            )
            status = jnp.where(solved != RESULTS.successful, solved, updated)
        else:
            net, opt_state, status = local_update(
                net, state.opt_state, relaxed, solved, optimizer=optimizer, **extra
            )
        status = jnp.where(refreshed != RESULTS.successful, refreshed, status)
        if self.refresh or self.resume_steps:
            steps = self.resume_steps or self.rule.steps
            store = lax.cond(  # an empty store has nothing to write back
                jnp.any(occupied),
                lambda s: _rewrite(s, slots, relaxed, measured, batch, steps),
                lambda s: s,
                store,
            )
        if self.tol > 0:
            learned = jnp.all(measured[batch:] < self.tol, axis=1) & jnp.any(occupied)
            store = discard(store, jnp.zeros(self.capacity, bool).at[slots].max(learned))
        store = _keep(store, relaxed, measured, batch, state.seen, k_keep, k_victim, self.rule)
        return Stored(net, opt_state, store, state.seen + batch), status

    def _relax(self, net, store, slots, x, y):
        """The current batch and the replayed slots, relaxed and stacked (current first):
        all from a fresh start in one solve, or the replayed ones continued from their
        stored states for `resume_steps` steps; with the worse of the solves' statuses."""
        occupied = jnp.any(store.occupied)
        # The replayed stimuli's clamps (stimulus and target) are held in every store.
        rx, ry = store.x[0][slots], store.x[-1][slots] * occupied
        if not self.resume_steps:
            return self.rule.relax(net, jnp.concatenate([x, rx]), jnp.concatenate([y, ry]))
        current, solved = self.rule.relax(net, x, y)
        # An empty store (before the first snapshot) replays its zero slots from a fresh
        # start, as the fresh replay does: zero targets, zero errors, no gradient.
        start = lax.cond(
            occupied,
            lambda: recall(store, slots, net=net, fresh=False, check=False),
            lambda: init_state(net, rx, ry),
        )
        replayed, resumed = self.rule.resume(net, start, steps=self.resume_steps)
        both = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), current, replayed)
        status = jnp.where(solved != RESULTS.successful, solved, resumed)
        return both, status

    def memory_bytes(self, net) -> int:
        """Bytes of the method's memory."""
        return footprint_bytes(self.init(net, key=None).store).total


def _rows(state, start, stop):
    return jax.tree_util.tree_map(lambda a: a[start:stop], state)


def _rewrite(store, slots, relaxed, measured, batch, steps):
    """Write the replayed slots' states and measured `E_r` back (one slot at a time, with
    the store's own `overwrite`)."""

    def one(store, i):
        row = jax.tree_util.tree_map(lambda a: lax.dynamic_slice_in_dim(a, batch + i, 1), relaxed)
        return overwrite(store, slots[i], row, energies=measured[batch + i], step=steps), None

    return lax.scan(one, store, jnp.arange(slots.shape[0]))[0]


def _remeasure(store, net, rule):
    """Every occupied slot's `E_r`, priority (`sum_r E_r`), step count and (in a store
    with states) states, measured again at `net`: a fresh feedforward start relaxed by
    `rule`, in one batch of every slot. Empty slots are relaxed too (their clamps are
    zero) and left as they were. Returns the store and the solve's status."""
    relaxed, solved = rule.relax(net, store.x[0], store.x[-1])
    measured = region_energies(relaxed, store.regions).astype(store.region_energy.dtype)
    occupied = store.occupied

    def where(new, old):
        if old is None:
            return None
        held = occupied.reshape((-1,) + (1,) * (old.ndim - 1))
        return jnp.where(held, new.astype(old.dtype), old)

    store = dataclasses.replace(
        store,
        x=tuple(where(new, old) for new, old in zip(relaxed.x, store.x, strict=True)),
        region_energy=where(measured, store.region_energy),
        steps=where(jnp.full_like(store.steps, rule.steps), store.steps),
        priority=where(jnp.sum(measured, axis=1), store.priority),
    )
    return store, solved


def _keep(store, relaxed, measured, batch, seen, k_keep, k_victim, rule):
    """Reservoir sampling into the store: the first stimuli fill empty slots; later ones
    are kept with probability `K / n` and replace a uniformly drawn stored stimulus. The
    victims are discarded, then the kept stimuli are snapshotted (first in the batch) into
    the freed slots; the rest are rejected by `RejectWhenFull`."""
    k = store.capacity
    empty = k - jnp.sum(store.occupied)
    n = _seen_index(seen, batch)
    u = jax.random.uniform(k_keep, (batch,))
    kept = (jnp.arange(batch) < empty) | (u * (n + 1) < k)
    victims = jnp.maximum(jnp.sum(kept) - empty, 0)
    draw = jnp.where(store.occupied, jax.random.uniform(k_victim, (k,)), jnp.inf)
    rank = jnp.argsort(jnp.argsort(draw))
    store = discard(store, store.occupied & (rank < victims))
    order = jnp.argsort(~kept, stable=True)
    current = jax.tree_util.tree_map(lambda a: a[order], _rows(relaxed, 0, batch))
    store, _ = snapshot(
        store, current, energies=measured[:batch][order], step=rule.steps, policy=RejectWhenFull()
    )
    return store
