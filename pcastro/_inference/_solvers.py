"""Solvers: small strategy objects that [`pcastro.infer`][] drives.

The contract follows Optimistix's minimisers and Diffrax's solvers: the driver owns the
loop, `max_steps` and non-finite detection; a solver owns how one step moves the states
and when it has converged. A solver never moves the weights: incremental PC, which
does, is a learning rule ([`pcastro.incremental_step`][]) that drives a solver.
"""

import abc
import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._custom_types import Array, Float, Int

States = tuple[Array, ...]


class AbstractSolver(eqx.Module):
    """How the free states move given the energy gradient `dF/dx`.

    A solver holds hyperparameters only; its running state (an optimiser's moments, a
    step size) is made by `init`, threaded through the loop by the driver, and returned
    in `Solution.solver_state` so that a solve can be resumed exactly.

    **Contract** (each method is called by [`pcastro.infer`][] and
    [`pcastro.incremental_step`][] only):

    - `descends` (class attribute): whether every step lowers the energy for a small
      enough step size (plain gradient descent). The driver then reports any rise of the
      energy over the solve as `diverged`, and a rise of any example's energy on any
      single step as `oscillated` (the step overshoots); for other solvers (momentum,
      Adam), whose energy may rise for a while, only a tenfold rise over the solve is
      reported.
    - `monotone` (class attribute): whether the solver itself guarantees that the
      energy of every example never rises: it is handed each example's energy at the
      current states (`step(..., energy=...)`), may reject a trial point, and picks the
      states to return with `settle`. The driver then skips the per-step `oscillated`
      check, which would count its rejected trials.
    - `measures_curvature` (class attribute): whether the driver measures `lambda_max`
      of the energy at the start of a solve (on the solver's first `probes` examples,
      with `iterations` Hessian-vector products) and hands it to
      `init(..., curvature=...)`.
    - `init(states, params, opt_state)`: the running state at the start of a solve
      (the drivers pass the network's parameters and `opt_state=None`).
    - `step(grads, states, solver_state)`: one move of the free states given `dF/dx`.
    - `terminate(norm, tol)`: whether the solve has converged, given the RMS of `dF/dx`
      over the free units and the user's tolerance.
    """

    descends: ClassVar[bool] = False
    monotone: ClassVar[bool] = False
    measures_curvature: ClassVar[bool] = False

    @abc.abstractmethod
    def init(self, states: States, params: Any, opt_state: Any) -> Any:
        """The running state for the given free states and parameters."""

    @abc.abstractmethod
    def step(self, grads: States, states: States, solver_state: Any) -> tuple[States, Any]:
        """One inference step: returns the new free states and running state."""

    @abc.abstractmethod
    def terminate(self, norm: Array, tol: float) -> Array:
        """True once the solve has converged."""


def _check_optimizer(optimizer, owner: str) -> None:
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"`{owner}(optimizer=...)` must be an Optax transformation such as "
            f"`optax.sgd(0.1)`, got {optimizer!r}."
        )


class AbstractStateSolver(AbstractSolver):
    """The base of pcastro's solvers: a solve has converged once the RMS of `dF/dx` over
    the free units is below `tol`. Subclass it and write `init` and `step`."""

    def terminate(self, norm, tol):
        return norm < tol


class Euler(AbstractStateSolver):
    """Gradient descent on the states, the Euler step of `dx/dt = -dF/dx`:

    `x <- x - dt * dF/dx`

    **Arguments:**

    - `dt`: the step size (inference rate).
    """

    dt: float = 0.1

    descends: ClassVar[bool] = True

    def __check_init__(self):
        if isinstance(self.dt, (int, float)) and not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(
                f"`Euler(dt=...)` must be a positive, finite step size, got {self.dt!r}; "
                "0 would not move the states and a negative step climbs the energy. Try "
                "`Euler(dt=0.1)`."
            )

    def init(self, states, params, opt_state):
        return None

    def step(self, grads, states, solver_state):
        new = jax.tree_util.tree_map(lambda x, g: x - self.dt * g, states, grads)
        return new, None


def _along_batch(mask: Array, like: Array) -> Array:
    """A `(batch,)` array broadcast against a `(batch, ...)` state."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - 1))


def _select(mask: Array, a: States, b: States) -> States:
    """Per example, `a` where `mask` else `b`."""
    return jax.tree_util.tree_map(lambda u, v: jnp.where(_along_batch(mask, u), u, v), a, b)


def within_noise(energy: Array, reference: Array) -> Array:
    """Whether `energy` is no higher than `reference` beyond float rounding: a summed
    energy (a cross-entropy of a confident prediction is ~1e-7) moves by a few ulps on
    a step too small to change it."""
    eps = jnp.finfo(energy.dtype).eps
    return energy <= reference + 64 * eps * (1.0 + jnp.abs(reference))


class AdaptiveEulerState(eqx.Module):
    """The running state of [`pcastro.AdaptiveEuler`][], per example of the batch.

    **Fields:**

    - `accepted`: the last accepted free states, the best point so far (empty without
      `backtrack`).
    - `slope`: `||dF/dx||^2` at `accepted`, per example, shape `(batch,)`.
    - `energy`: each example's energy at `accepted`, shape `(batch,)` (`inf` before the
      first point is seen).
    - `dt`: each example's step size for its next trial, shape `(batch,)`.
    - `bound`: the step set by the measured curvature, `safety / lambda_max`, that `dt`
      returns to after a rejection, shape `(batch,)`.
    - `curvature`: the `lambda_max` estimate the bound was set from (the largest over
      the probed examples).
    - `rejected`: how many trial points were rejected so far, summed over the batch.
    """

    accepted: States | tuple[()]
    slope: Float[Array, " batch"]
    energy: Float[Array, " batch"]
    dt: Float[Array, " batch"]
    bound: Float[Array, " batch"]
    curvature: Float[Array, ""]
    rejected: Int[Array, ""]


class AdaptiveEuler(AbstractStateSolver):
    r"""Euler steps sized by the measured curvature of the energy: the default solver of
    [`pcastro.infer`][] and [`pcastro.train_step`][].

    Plain Euler, `x <- x - dt * dF/dx`, is stable only while `dt * lambda_max < 2`,
    `lambda_max` the largest eigenvalue of the Hessian of `F` in the free states, and
    `lambda_max` grows as a network trains (about 2.5 at initialisation, 40-190 on a
    trained 784-400-400-10 MLP), so a fixed step that works at the start overshoots
    later and the weight gradients point the wrong way. This solver estimates
    `lambda_max` at the start of every solve, by `iterations` steps of power iteration on
    Hessian-vector products over the first `probes` examples of the batch (started from
    their gradient), and steps with

    `dt = min(dt_max, safety / lambda_max)`.

    With `safety = 1` the stiffest mode is removed in one step and no mode changes sign,
    so each error decays towards equilibrium without overshooting; an estimate up to
    twice too small is still stable. Every step is then checked as for
    [`pcastro.Euler`][]: an example whose energy rises on a step (one whose curvature is
    more than twice the probed examples') is reported as
    [`pcastro.RESULTS`][]`.oscillated`. The estimate costs one gradient and `iterations`
    Hessian-vector products on `probes` examples per solve.

    With `backtrack=True` the solver also guarantees that no example's energy rises:
    a trial point `x_acc - dt * g_acc` is accepted only if its energy is no higher than
    at the last accepted point `x_acc` (per example: the Hessian is block-diagonal over
    the examples of a batch). A rejected trial is taken back and the step set to the
    minimiser of the quadratic through the two energies and the slope `-||g_acc||^2`,
    `t* = ||g_acc||^2 dt^2 / (2 (F_trial - F_acc + dt ||g_acc||^2))`, kept within
    `[0.1 dt, 0.5 dt]`; after an accepted trial the step doubles back towards the bound.
    Each example returns its best point. This keeps a copy of the states and costs
    about 20% per step on CPU (`benchmarks/solver_cost.py`); on the networks measured
    it never rejected a step, which is why it is not the default. It needs instant
    error neurons (no `tau_e`) and not `fixed_predictions`, whose dynamics is not a
    descent on `F`.

    `Solution.solver_state` holds the estimate (`curvature`), the step (`dt`) and, with
    `backtrack`, how many trials were rejected (`rejected`). Not for use inside
    [`pcastro.incremental_step`][], whose weights change during the solve.

    **Arguments:**

    - `safety`: the step as a fraction of `1 / lambda_max` (below 2 is stable; above 1
      the stiffest modes overshoot and oscillate while they decay).
    - `dt_max`: the largest step ever taken (1 zeroes a Gaussian node's own error in one
      move).
    - `probes`: how many examples of the batch the curvature is measured on.
    - `iterations`: Hessian-vector products of the power iteration.
    - `backtrack`: take back every step that raises an example's energy.

    ??? cite "References"

        ```bibtex
        @book{nocedal2006numerical,
            title={Numerical Optimization},
            author={Nocedal, Jorge and Wright, Stephen J.},
            edition={2}, publisher={Springer}, year={2006},
            note={Section 3.5: step-length selection by interpolation}
        }
        @article{pearlmutter1994fast,
            title={Fast Exact Multiplication by the Hessian},
            author={Pearlmutter, Barak A.},
            journal={Neural Computation}, volume={6}, number={1}, pages={147--160},
            year={1994}
        }
        ```
    """

    safety: float = 1.0
    dt_max: float = 1.0
    probes: int = eqx.field(static=True, default=4)
    iterations: int = eqx.field(static=True, default=5)
    backtrack: bool = eqx.field(static=True, default=False)

    descends: ClassVar[bool] = True
    measures_curvature: ClassVar[bool] = True

    @property
    def monotone(self) -> bool:
        return self.backtrack

    def __check_init__(self):
        for name, upper in (("safety", 2.0), ("dt_max", math.inf)):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not (
                math.isfinite(value) and 0 < value and (value < upper or upper == math.inf)
            ):
                raise ValueError(
                    f"`AdaptiveEuler({name}=...)` must be a positive, finite number"
                    + (" below 2 (the stability limit)" if upper == 2.0 else "")
                    + f", got {value!r}; try `AdaptiveEuler(safety=1.0, dt_max=1.0)`."
                )
        for name in ("probes", "iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`AdaptiveEuler({name}=...)` must be a positive int, got {value!r}."
                )

    def init(self, states, params, opt_state, *, curvature=None):
        """The running state; `curvature` is the `lambda_max` estimate of each probed
        example (the driver measures it), None to start at `dt_max`."""
        # With no free states there is nothing to move: an empty batch of steps.
        batch = states[0].shape[0] if states else 0
        dtype = states[0].dtype if states else jnp.float32
        lam = jnp.asarray(0.0, dtype) if curvature is None else jnp.max(curvature)
        # A non-finite or non-positive estimate (a flat or broken energy) leaves dt_max.
        bound = jnp.where(lam > 0, self.safety / jnp.where(lam > 0, lam, 1.0), self.dt_max)
        bound = jnp.full((batch,), jnp.minimum(bound, self.dt_max), dtype)
        return AdaptiveEulerState(
            accepted=states if self.backtrack else (),
            slope=jnp.zeros((batch,), dtype),
            energy=jnp.full((batch,), jnp.inf, dtype),
            dt=bound,
            bound=bound,
            curvature=lam,
            rejected=jnp.zeros((), jnp.int32),
        )

    def step(self, grads, states, solver_state, *, energy=None):
        s = solver_state
        if not self.backtrack or not states:
            step = jax.tree_util.tree_map(
                lambda x, g: x - _along_batch(s.dt, x).astype(x.dtype) * g, states, grads
            )
            return step, s
        assert energy is not None  # the driver hands a monotone solver the energy
        first = jnp.isinf(s.energy)
        accept = within_noise(energy, s.energy) & jnp.isfinite(energy)
        # The quadratic along the last step through F_acc (slope -G) and F_trial.
        rise = energy - s.energy + s.dt * s.slope
        fit = s.slope * jnp.square(s.dt) / (2.0 * jnp.where(rise > 0, rise, 1.0))
        fit = jnp.where(jnp.isfinite(fit) & (rise > 0), fit, 0.0)
        on_reject = jnp.clip(fit, 0.1 * s.dt, 0.5 * s.dt)
        on_accept = jnp.minimum(2.0 * s.dt, s.bound)
        dt = jnp.where(first, s.dt, jnp.where(accept, on_accept, on_reject))
        # A rejected trial `x_acc - dt_old g_acc` is pulled back along the same line to
        # `x_acc - dt g_acc`, so `g_acc` itself need not be kept.
        back = jnp.where(accept, 0.0, dt / s.dt)

        def move(x, acc, g):
            ok = _along_batch(accept, x)
            return jnp.where(
                ok,
                x - _along_batch(dt, x).astype(x.dtype) * g,
                acc + _along_batch(back, x).astype(x.dtype) * (x - acc),
            )

        trial = jax.tree_util.tree_map(move, states, s.accepted, grads)
        slope = sum(jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1) for g in grads)
        new = eqx.tree_at(
            lambda t: (t.accepted, t.slope, t.energy, t.dt, t.rejected),
            s,
            (
                _select(accept, states, s.accepted),
                jnp.where(accept, slope, s.slope),
                jnp.where(accept, energy, s.energy),
                dt,
                s.rejected + jnp.sum(~accept & ~first, dtype=s.rejected.dtype),
            ),
        )
        return trial, new

    def settle(self, states, energy, solver_state):
        """Per example, the final trial `states` (with energies `energy`) if it is no
        worse than the last accepted point, else that point; and the solver state with
        a rejected final trial counted."""
        s = solver_state
        if not states:
            return states, s
        better = within_noise(energy, s.energy) & jnp.isfinite(energy)
        settled = _select(better, states, s.accepted)
        return settled, eqx.tree_at(
            lambda t: t.rejected, s, s.rejected + jnp.sum(~better, dtype=s.rejected.dtype)
        )


class OptaxSolver(AbstractStateSolver):
    """Any Optax optimiser applied to the states, e.g. `OptaxSolver(optax.sgd(0.1, momentum=0.9))`.

    Its moments are part of `Solution.solver_state`: pass them back to
    [`pcastro.infer`][] to resume a solve exactly.

    **Arguments:**

    - `optimizer`: an `optax.GradientTransformation`.
    """

    optimizer: optax.GradientTransformation = eqx.field(static=True)

    def __check_init__(self):
        _check_optimizer(self.optimizer, "OptaxSolver")

    def init(self, states, params, opt_state):
        return self.optimizer.init(states)

    def step(self, grads, states, solver_state):
        updates, solver_state = self.optimizer.update(grads, solver_state, states)
        return optax.apply_updates(states, updates), solver_state
