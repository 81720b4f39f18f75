"""The benchmark harness: one-shot, interruption and continual-learning protocols, their
learners, configs and records. Names load on first use, so `pcastro --help` is quick."""

import typing as _typing

from .._lazy import lazy_exports as _lazy_exports

__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._config": (
            "BenchConfig",
            "InterruptConfig",
            "OneShotConfig",
            "ScratchConfig",
            "TransferConfig",
            "OmniglotConfig",
            "ContinualConfig",
        ),
        "._figures": ("plot_results",),
        "._interrupt": ("run_interrupt",),
        "._learners": (
            "LEARNERS",
            "PC",
            "AbstractLearner",
            "Backprop",
            "BackpropReplay",
            "BackpropRule",
            "ClassMean",
            "PCAstro",
            "PCRule",
            "PixelNN",
        ),
        "._oneshot": ("LearnerParts", "run_oneshot"),
        "._readouts": ("PCLocal",),
        "._records": ("select_on_validation",),
        "._stats": ("mean_ci95",),
        "._continual": ("run_continual",),
        "._continual_methods": (
            "AbstractContinualLearner",
            "AstrocyteStore",
            "ExperienceReplay",
            "FineTune",
        ),
    },
)

if _typing.TYPE_CHECKING:  # what type checkers, editors and the API docs read
    # Continual learning (split-MNIST class-incremental).
    from ._config import (
        BenchConfig as BenchConfig,
        ContinualConfig as ContinualConfig,
        InterruptConfig as InterruptConfig,
        OmniglotConfig as OmniglotConfig,
        OneShotConfig as OneShotConfig,
        ScratchConfig as ScratchConfig,
        TransferConfig as TransferConfig,
    )
    from ._continual import run_continual as run_continual
    from ._continual_methods import (
        AbstractContinualLearner as AbstractContinualLearner,
        AstrocyteStore as AstrocyteStore,
        ExperienceReplay as ExperienceReplay,
        FineTune as FineTune,
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
    from ._oneshot import LearnerParts as LearnerParts, run_oneshot as run_oneshot
    from ._readouts import PCLocal as PCLocal
    from ._records import select_on_validation as select_on_validation
    from ._stats import mean_ci95 as mean_ci95
