"""What each condition of the interruption benchmark does with task A and task B.

A condition is a learner and a schedule. The schedule decides what is learned in each
phase (A for `k` updates, then B for `n`, then a resume) and returns accuracy on (A, B)
after each phase; the learner decides how an update is made.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from .. import RESULTS
from ..astro import consolidate, make_regions, make_store, snapshot
from ._learners import AbstractLearner, Trained


class AbstractResume(eqx.Module):
    """What happens after B: how A is brought back."""

    @abc.abstractmethod
    def remember(self, store, learner, state, x, y, *, step: int, capacity: int):
        """Keep what the resume needs of a learned batch `(x, y)`; returns the store."""

    @abc.abstractmethod
    def resume(self, learner, state, store, a, b, *, rounds: int, key):
        """The learner's state after resuming for `rounds` rounds."""


class Relearn(AbstractResume):
    """Go back to A's support and finish its remaining `rounds` updates."""

    def remember(self, store, learner, state, x, y, *, step, capacity):
        return store

    def resume(self, learner, state, store, a, b, *, rounds, key):
        return learner.learn(state, *a, {"updates": rounds}, key=key)


class InterleavedReplay(AbstractResume):
    """The control: the same stimuli replayed one at a time, A and B interleaved in a fixed
    order, from fresh feedforward states, no priority, no gate, no discard; as many
    single-stimulus updates as consolidation makes."""

    def remember(self, store, learner, state, x, y, *, step, capacity):
        return store

    def resume(self, learner, state, store, a, b, *, rounds, key):
        na, nb = a[0].shape[0], b[0].shape[0]
        order = jnp.stack([jnp.arange(na), na + jnp.arange(nb)], 1).ravel()
        sx = jnp.concatenate([a[0], b[0]])[order]
        sy = jnp.concatenate([a[1], b[1]])[order]

        def one(state, i):
            return learner.learn(state, sx[i][None], sy[i][None], {"updates": 1}, key=key), None

        def one_round(state, _):
            return lax.scan(one, state, jnp.arange(sx.shape[0]))[0], None

        return lax.scan(one_round, state, None, length=rounds)[0]


class Consolidate(AbstractResume):
    """The store: every learned batch is snapshotted (inferred states and local errors
    `E_r`); after B the store is consolidated by priority with the learner's optimiser
    (gated, if it has astrocytes) under NE `ne`, starting from stored or `fresh` states,
    discarding slots whose error falls below `tol`. `ne` is None for a learner without
    astrocytes (no gate would listen to it)."""

    fresh: bool = eqx.field(static=True)
    tol: ArrayLike  # traced when the tolerance is tuned under vmap
    ne: ArrayLike | None

    def remember(self, store, learner, state, x, y, *, step, capacity):
        if store is None:
            store = make_store(state.net, make_regions(state.net), capacity=capacity)
        relaxed, solved = learner.rule.relax(state.net, x, y)
        # A snapshot of a failed solve would be replayed as if it were a memory.
        relaxed = eqx.error_if(
            relaxed,
            solved != RESULTS.successful,
            "Inference for a snapshot did not succeed (diverged or non-finite): the store "
            "would keep those states. Lower the solver's step or use the default "
            "`pcastro.AdaptiveEuler()`.",
        )
        return snapshot(store, relaxed, step=step)[0]

    def resume(self, learner, state, store, a, b, *, rounds, key):
        net, opt_state, _, _ = consolidate(
            state.net,
            state.opt_state,
            store,
            optimizer=learner.optimizer(state.lr, state.net),
            ne=self.ne,
            steps=learner.rule.steps,
            rounds=rounds,
            tol=self.tol,
            fresh=self.fresh,
            solver=learner.rule.solver,
        )
        return Trained(net, state.lr, opt_state, state.failed)


class AbstractSchedule(eqx.Module):
    @abc.abstractmethod
    def run(self, learner: AbstractLearner, state, a, b, *, k: int, n: int, score, key):
        """Accuracy on (A, B) after A's first `k` updates, after B and at the end: `(3, 2)`."""


def _learn(learner, state, data, updates, key):
    return learner.learn(state, *data, {"updates": updates}, key=key)


def _joined(a, b):
    return jnp.concatenate([a[0], b[0]]), jnp.concatenate([a[1], b[1]])


class Sequential(AbstractSchedule):
    """A learned to the end (`n` updates), then B: no interruption, no return to A."""

    def run(self, learner, state, a, b, *, k, n, score, key):
        state = _learn(learner, state, a, k, key)
        first = score(state)
        state = _learn(learner, _learn(learner, state, a, n - k, key), b, n, key)
        return jnp.stack([first, score(state), score(state)])


class Joint(AbstractSchedule):
    """A and B learned together from the start (for a memory learner: both remembered;
    remembering them twice changes no nearest neighbour or class mean)."""

    def run(self, learner, state, a, b, *, k, n, score, key):
        state = _learn(learner, state, _joined(a, b), k, key)
        first = score(state)
        state = _learn(learner, state, _joined(a, b), n - k, key)
        return jnp.stack([first, score(state), score(state)])


class Interrupted(AbstractSchedule):
    """A for `k` updates, interrupted by B for `n` updates (with A's support in every
    batch if `rehearse`), then `resume` (if any) for the `n - k` rounds A was owed."""

    resume: AbstractResume | None = None
    rehearse: bool = eqx.field(static=True, default=False)

    def run(self, learner, state, a, b, *, k, n, score, key):
        capacity = a[0].shape[0] + b[0].shape[0]
        state = _learn(learner, state, a, k, key)
        first = score(state)
        store = None
        if self.resume is not None:
            store = self.resume.remember(None, learner, state, *a, step=k, capacity=capacity)
        state = _learn(learner, state, _joined(a, b) if self.rehearse else b, n, key)
        after_b = score(state)
        if self.resume is None:
            return jnp.stack([first, after_b, after_b])
        store = self.resume.remember(store, learner, state, *b, step=n, capacity=capacity)
        state = self.resume.resume(learner, state, store, a, b, rounds=n - k, key=key)
        return jnp.stack([first, after_b, score(state)])
