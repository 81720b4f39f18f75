"""pcastro: predictive coding with astrocytes, in JAX.

Public names are loaded on first use, so `import pcastro` and `pcastro --help` are quick;
`pcastro.infer`, `pcastro.astro`, ... behave as ordinary attributes.
"""

import importlib.metadata as _metadata
import typing as _typing

from ._lazy import lazy_exports as _lazy_exports

__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        ".astro": ("astro",),
        ".baselines": ("baselines",),
        ".data": ("data",),
        "._checkpoint": ("load", "save"),
        "._convnet": ("Activation", "MaxPool", "Reshape", "convnet"),
        "._energy": ("AbstractEnergy", "CrossEntropy", "Gaussian"),
        "._free_energy": ("energy", "local_energies", "node_energies"),
        "._incremental": ("incremental_step",),
        "._inference": (
            "RESULTS",
            "AbstractSolver",
            "AbstractStateSolver",
            "AdaptiveEuler",
            "AdaptiveEulerState",
            "Euler",
            "OptaxSolver",
            "Solution",
            "infer",
            "max_curvature",
        ),
        "._learning": ("apply_param_grads", "param_grads", "train_step"),
        "._network": ("Network", "Node", "chain", "identity", "mlp"),
        "._parametrisation": (
            "AbstractParametrisation",
            "MuPC",
            "Scaled",
            "Standard",
            "parametrise",
            "residual_mlp",
        ),
        "._predict": ("accuracy", "predict"),
        "._sharding": ("make_mesh", "replicate", "shard", "shard_local"),
        "._state": ("Clamp", "PCState", "errors", "init_state"),
    },
)

if _typing.TYPE_CHECKING:  # what type checkers, editors and the API docs read
    from . import astro as astro, baselines as baselines, data as data  # noqa: E402, I001
    from ._checkpoint import load as load, save as save
    from ._convnet import (
        Activation as Activation,
        MaxPool as MaxPool,
        Reshape as Reshape,
        convnet as convnet,
    )
    from ._energy import (
        AbstractEnergy as AbstractEnergy,
        CrossEntropy as CrossEntropy,
        Gaussian as Gaussian,
    )
    from ._free_energy import (
        energy as energy,
        local_energies as local_energies,
        node_energies as node_energies,
    )
    from ._incremental import incremental_step as incremental_step
    from ._inference import (
        RESULTS as RESULTS,
        AbstractSolver as AbstractSolver,
        AbstractStateSolver as AbstractStateSolver,
        AdaptiveEuler as AdaptiveEuler,
        AdaptiveEulerState as AdaptiveEulerState,
        Euler as Euler,
        OptaxSolver as OptaxSolver,
        Solution as Solution,
        infer as infer,
        max_curvature as max_curvature,
    )
    from ._learning import (
        apply_param_grads as apply_param_grads,
        param_grads as param_grads,
        train_step as train_step,
    )
    from ._network import (
        Network as Network,
        Node as Node,
        chain as chain,
        identity as identity,
        mlp as mlp,
    )
    from ._parametrisation import (
        AbstractParametrisation as AbstractParametrisation,
        MuPC as MuPC,
        Scaled as Scaled,
        Standard as Standard,
        parametrise as parametrise,
        residual_mlp as residual_mlp,
    )
    from ._predict import accuracy as accuracy, predict as predict
    from ._sharding import (
        make_mesh as make_mesh,
        replicate as replicate,
        shard as shard,
        shard_local as shard_local,
    )
    from ._state import (
        Clamp as Clamp,
        PCState as PCState,
        errors as errors,
        init_state as init_state,
    )

try:
    __version__ = _metadata.version("pcastro")
except _metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0.1.0+source"
