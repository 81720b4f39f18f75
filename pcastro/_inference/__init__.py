from ._curvature import max_curvature as max_curvature
from ._driver import Solution as Solution, infer as infer
from ._results import RESULTS as RESULTS
from ._solvers import (
    AbstractSolver as AbstractSolver,
    AbstractStateSolver as AbstractStateSolver,
    AdaptiveEuler as AdaptiveEuler,
    AdaptiveEulerState as AdaptiveEulerState,
    Euler as Euler,
    OptaxSolver as OptaxSolver,
)
