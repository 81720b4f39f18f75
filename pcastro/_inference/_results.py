"""The status of an inference solve: an enumeration whose members carry their message."""

import enum

import equinox as eqx

from .._custom_types import Array


class RESULTS(enum.IntEnum):
    """How an inference solve ended. Each member is an int (the `status` that
    [`pcastro.infer`][] returns) whose `.message` is what the user reads.

    - `successful`: finished (or met `tol`).
    - `max_steps_reached`: `tol` was given and not met within `steps`.
    - `nonfinite`: the energy or a state became NaN or infinite.
    - `diverged`: the energy rose during inference (or grew more than tenfold).
    - `nonfinite_update`: a weight update produced NaN or inf parameters.
    - `update_too_large`: one weight update moved the parameters by more than their own
      norm.
    - `oscillated`: the energy of some example rose by more than 0.1% on some step of a
      solver meant to descend on every step ([`pcastro.Euler`][],
      [`pcastro.AdaptiveEuler`][]), though it may have ended lower than it started: the
      step overshoots (`dt * lambda_max > 2`).
    """

    message: str

    def __new__(cls, code: int, message: str):
        member = int.__new__(cls, code)
        member._value_ = code
        member.message = message
        return member

    successful = 0, ""
    max_steps_reached = (
        1,
        "Inference reached `steps` before the gradient norm fell below `tol`: raise "
        "`steps`, loosen `tol`, or pass `throw=False` to accept the approximate states.",
    )
    nonfinite = (
        2,
        "Inference produced a non-finite energy (NaN or inf): check the data for NaN, "
        "lower the solver's step size (e.g. `Euler(dt=0.05)`), or scale the inputs.",
    )
    diverged = (
        3,
        "Inference diverged (the energy rose instead of falling): lower the solver's step "
        "size (e.g. `Euler(dt=0.05)`) or use `OptaxSolver(optax.sgd(...))`.",
    )
    nonfinite_update = (
        4,
        "The weight update produced non-finite parameters (NaN or inf): lower the learning "
        "rate of the optimiser, check its hyperparameters for NaN, and check the data.",
    )
    update_too_large = (
        5,
        "One weight update moved the parameters by more than their own norm: the learning "
        "rate of the optimiser is far too large for this network; lower it (e.g. 1e-3 for "
        "Adam).",
    )
    oscillated = (
        6,
        "Inference oscillated: the energy of some example rose on a step (the step size "
        "exceeds 2 / lambda_max, the largest curvature of the energy; lambda_max grows as "
        "a network trains). Use the default `pcastro.AdaptiveEuler()`, whose step follows "
        "the curvature, or lower `Euler(dt=...)` below 2 / `pcastro.max_curvature(net, "
        "state)`.",
    )


def attach_errors(x: Array, status: Array) -> Array:
    """`x`, carrying a runtime error with the message of `status` when it is a failure."""
    # One branched check indexed by the status code, not one check per failure: the same
    # errors, a fifth of the tracing (this was a fifth of a training step's trace time).
    messages = [result.message for result in sorted(RESULTS)]
    return eqx.branched_error_if(x, status != RESULTS.successful, status, messages)


def raise_if_failed(status: Array, *, throw: bool) -> Array:
    """With `throw`, attach a runtime error carrying the message of a failed `status`."""
    # Tied to the scalar status (returned to the caller), so checking costs nothing in
    # the common case and no large array is routed through the error branch.
    return attach_errors(status, status) if throw else status
