"""Astrocytes: regions, calcium and the plasticity gate, the store, consolidation."""

from .._checkpoint import load as load, save as save  # also `pcastro.save`/`pcastro.load`
from .._learning import has_gate as has_gate
from ._consolidate import ConsolidationReport as ConsolidationReport, consolidate as consolidate
from ._footprint import Footprint as Footprint, footprint_bytes as footprint_bytes
from ._gate import (
    AstrocyteGateState as AstrocyteGateState,
    Astrocytes as Astrocytes,
    apply_gated_grads as apply_gated_grads,
    gate_updates as gate_updates,
    scale_by_astrocytes as scale_by_astrocytes,
)
from ._per_example import gated_param_grads as gated_param_grads
from ._regions import (
    AbstractSense as AbstractSense,
    Regions as Regions,
    SquaredError as SquaredError,
    TargetExcess as TargetExcess,
    make_regions as make_regions,
    region_energies as region_energies,
)
from ._slots import (
    discard as discard,
    overwrite as overwrite,
    recall as recall,
    snapshot as snapshot,
)
from ._store import (
    AbstractEvictionPolicy as AbstractEvictionPolicy,
    Evicted as Evicted,
    EvictLowestPriority as EvictLowestPriority,
    EvictOldest as EvictOldest,
    RejectWhenFull as RejectWhenFull,
    Store as Store,
    make_store as make_store,
)

__all__ = [
    "AbstractEvictionPolicy",
    "AbstractSense",
    "apply_gated_grads",
    "AstrocyteGateState",
    "Astrocytes",
    "consolidate",
    "ConsolidationReport",
    "discard",
    "Evicted",
    "EvictLowestPriority",
    "EvictOldest",
    "Footprint",
    "footprint_bytes",
    "gated_param_grads",
    "gate_updates",
    "has_gate",
    "load",
    "make_regions",
    "make_store",
    "overwrite",
    "recall",
    "region_energies",
    "Regions",
    "RejectWhenFull",
    "save",
    "scale_by_astrocytes",
    "snapshot",
    "SquaredError",
    "Store",
    "TargetExcess",
]
