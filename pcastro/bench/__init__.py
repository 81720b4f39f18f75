from ._interrupt import InterruptConfig as InterruptConfig, run_interrupt as run_interrupt
from ._oneshot import OneShotConfig as OneShotConfig, run_oneshot as run_oneshot
from ._stats import mean_ci95 as mean_ci95
