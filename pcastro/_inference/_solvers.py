"""Update rules for the free states: small strategy objects used by `infer`."""

import abc
from typing import Any

import equinox as eqx
import jax
import optax

from .._custom_types import Array


class AbstractSolver(eqx.Module):
    """How the free states move given the energy gradient `dF/dx`.

    A solver holds hyperparameters only; its running state (e.g. an optimiser's moments)
    is created by `init` and threaded through the inference loop.
    """

    @abc.abstractmethod
    def init(self, states: tuple[Array, ...]) -> Any:
        """The solver's running state for the given free states."""

    @abc.abstractmethod
    def step(
        self, grads: tuple[Array, ...], states: tuple[Array, ...], solver_state: Any
    ) -> tuple[tuple[Array, ...], Any]:
        """One inference step: returns the new free states and solver state."""


class Euler(AbstractSolver):
    """Gradient descent on the states, the Euler step of `dx/dt = -dF/dx`:

    `x <- x - dt * dF/dx`

    **Arguments:**

    - `dt`: the step size (inference rate).
    """

    dt: float = 0.1

    def init(self, states):
        return None

    def step(self, grads, states, solver_state):
        new = jax.tree_util.tree_map(lambda x, g: x - self.dt * g, states, grads)
        return new, None


class OptaxSolver(AbstractSolver):
    """Any Optax optimiser applied to the states, e.g. `OptaxSolver(optax.sgd(0.1, momentum=0.9))`.

    **Arguments:**

    - `optimizer`: an `optax.GradientTransformation`.
    """

    optimizer: optax.GradientTransformation = eqx.field(static=True)

    def init(self, states):
        return self.optimizer.init(states)

    def step(self, grads, states, solver_state):
        updates, solver_state = self.optimizer.update(grads, solver_state, states)
        return optax.apply_updates(states, updates), solver_state


class IncrementalPC(AbstractSolver):
    """Incremental predictive coding: the weights are updated at every inference step.

    Each step moves the free states with `state_solver` and the parameters with
    `optimizer`, both from the gradients of the energy at the same point
    `(x_t, theta_t)`: the two updates run in parallel, as in iPC's algorithm (Salvatori
    et al., 2024), not one after the other. `infer` then returns the updated network and
    optimiser state in its solution.

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
    state_solver: AbstractSolver = Euler(dt=0.1)

    def init(self, states):
        return self.state_solver.init(states)

    def step(self, grads, states, solver_state):
        return self.state_solver.step(grads, states, solver_state)
