from ._driver import RESULTS as RESULTS, Solution as Solution, infer as infer
from ._solvers import (
    AbstractSolver as AbstractSolver,
    Euler as Euler,
    IncrementalPC as IncrementalPC,
    OptaxSolver as OptaxSolver,
)
