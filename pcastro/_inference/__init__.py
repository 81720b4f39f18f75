from ._driver import Solution as Solution, infer as infer
from ._results import RESULTS as RESULTS
from ._solvers import (
    AbstractSolver as AbstractSolver,
    AbstractStateSolver as AbstractStateSolver,
    Euler as Euler,
    IncrementalPC as IncrementalPC,
    OptaxSolver as OptaxSolver,
)
