from ._config import (
    BenchConfig as BenchConfig,
    InterruptConfig as InterruptConfig,
    OneShotConfig as OneShotConfig,
)
from ._figures import plot_results as plot_results
from ._interrupt import run_interrupt as run_interrupt
from ._learners import (
    LEARNERS as LEARNERS,
    PC as PC,
    AbstractLearner as AbstractLearner,
    Backprop as Backprop,
    BackpropReplay as BackpropReplay,
    BackpropRule as BackpropRule,
    ClassMean as ClassMean,
    PCAstro as PCAstro,
    PCRule as PCRule,
    PixelNN as PixelNN,
)
from ._oneshot import run_oneshot as run_oneshot
from ._records import select_on_validation as select_on_validation
from ._stats import mean_ci95 as mean_ci95

# isort: split
# Continual learning (split-MNIST class-incremental).
from ._config import ContinualConfig as ContinualConfig
from ._continual import run_continual as run_continual
from ._continual_methods import (
    AbstractContinualLearner as AbstractContinualLearner,
    AstrocyteStore as AstrocyteStore,
    ExperienceReplay as ExperienceReplay,
    FineTune as FineTune,
)
