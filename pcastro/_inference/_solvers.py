"""Solvers: small strategy objects that [`pcastro.infer`][] drives.

The contract follows Optimistix's minimisers and Diffrax's solvers: the driver owns the
loop, `max_steps` and non-finite detection; a solver owns how one step moves the states
(and, for a solver that learns, the parameters), when it has converged, and what it
hands back.
"""

import abc
import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import optax

from .._custom_types import Array

States = tuple[Array, ...]


class AbstractSolver(eqx.Module):
    """How the free states move given the energy gradient `dF/dx`.

    A solver holds hyperparameters only; its running state (an optimiser's moments, a
    learning solver's parameter-optimiser state) is made by `init`, threaded through
    the loop by the driver, and returned in `Solution.solver_state` so that a solve
    can be resumed exactly.

    **Contract** (each method is called by [`pcastro.infer`][] only):

    - `learns` (class attribute): whether `update_params` changes the parameters; the
      driver then differentiates the energy with respect to them at every step.
    - `descends` (class attribute): whether every step lowers the energy for a small
      enough step size (plain gradient descent). The driver then reports any rise of the
      energy over the solve as `diverged`; for other solvers (momentum, Adam), whose
      energy may rise for a while, only a tenfold rise is.
    - `init(states, params, opt_state)`: the running state at the start of a solve.
    - `step(grads, states, solver_state)`: one move of the free states given `dF/dx`.
    - `update_params(grads, params, solver_state)`: the parameter-update hook, given the
      batch-mean `dF/dtheta` at the same point as the state gradient.
    - `terminate(norm, tol)`: whether the solve has converged, given the RMS of `dF/dx`
      over the free units and the user's tolerance.
    - `postprocess(solver_state)`: the parameter-optimiser state handed back to the
      caller in `Solution.opt_state` (`None` for a solver that does not learn).
    """

    learns: ClassVar[bool]
    descends: ClassVar[bool] = False

    @abc.abstractmethod
    def init(self, states: States, params: Any, opt_state: Any) -> Any:
        """The running state for the given free states and parameters."""

    @abc.abstractmethod
    def step(self, grads: States, states: States, solver_state: Any) -> tuple[States, Any]:
        """One inference step: returns the new free states and running state."""

    @abc.abstractmethod
    def update_params(self, grads: Any, params: Any, solver_state: Any) -> tuple[Any, Any]:
        """One parameter update: returns the new parameters and running state."""

    @abc.abstractmethod
    def terminate(self, norm: Array, tol: float) -> Array:
        """True once the solve has converged."""

    @abc.abstractmethod
    def postprocess(self, solver_state: Any) -> Any:
        """The parameter-optimiser state to hand back (None if the solver does not learn)."""


def _check_optimizer(optimizer, owner: str) -> None:
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"`{owner}(optimizer=...)` must be an Optax transformation such as "
            f"`optax.sgd(0.1)`, got {optimizer!r}."
        )


class AbstractStateSolver(AbstractSolver):
    """A solver that moves the states only: the weights stay fixed during inference."""

    learns: ClassVar[bool] = False

    def update_params(self, grads, params, solver_state):
        return params, solver_state

    def terminate(self, norm, tol):
        return norm < tol

    def postprocess(self, solver_state):
        return None


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


class IncrementalPC(AbstractSolver):
    """Incremental predictive coding: the weights are updated at every inference step.

    Each step moves the free states with `state_solver` and the parameters with
    `optimizer`, both from the gradients of the energy at the same point
    `(x_t, theta_t)`: the two updates run in parallel, as in iPC's algorithm (Salvatori
    et al., 2024), not one after the other. `infer` returns the updated network in
    `Solution.network` and the optimiser state in `Solution.opt_state`.

    **Arguments:**

    - `optimizer`: the Optax optimiser for the parameters.
    - `state_solver`: the solver for the states (default `Euler(dt=0.1)`).

    ??? cite "Reference"

        ```bibtex
        @inproceedings{salvatori2024stable,
            title={A Stable, Fast, and Fully Automatic Learning Algorithm for
                   Predictive Coding Networks},
            author={Salvatori, Tommaso and Song, Yuhang and Yordanov, Yordan and
                    Millidge, Beren and Xu, Zhenghua and Sha, Lei and Emde, Cornelius and
                    Bogacz, Rafal and Lukasiewicz, Thomas},
            booktitle={International Conference on Learning Representations},
            year={2024}
        }
        ```
    """

    optimizer: optax.GradientTransformation = eqx.field(static=True)
    state_solver: AbstractStateSolver = Euler(dt=0.1)

    learns: ClassVar[bool] = True

    def __check_init__(self):
        _check_optimizer(self.optimizer, "IncrementalPC")
        if not isinstance(self.state_solver, AbstractStateSolver):
            raise TypeError(
                "`IncrementalPC(state_solver=...)` must be a solver that moves the states "
                f"only, such as `pcastro.Euler(dt=0.1)`; got {self.state_solver!r}."
            )

    def init(self, states, params, opt_state):
        if opt_state is None:
            raise ValueError(
                "IncrementalPC updates the weights: pass `opt_state=solver.optimizer.init("
                "eqx.filter(net, eqx.is_inexact_array))`."
            )
        return self.state_solver.init(states, params, None), opt_state

    def step(self, grads, states, solver_state):
        inner, opt_state = solver_state
        states, inner = self.state_solver.step(grads, states, inner)
        return states, (inner, opt_state)

    def update_params(self, grads, params, solver_state):
        inner, opt_state = solver_state
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), (inner, opt_state)

    def terminate(self, norm, tol):
        return self.state_solver.terminate(norm, tol)

    def postprocess(self, solver_state):
        return solver_state[1]
