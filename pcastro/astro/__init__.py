"""Astrocytes: regions, calcium and the plasticity gate, the store, consolidation."""

from ._consolidate import ConsolidationReport as ConsolidationReport, consolidate as consolidate
from ._gate import (
    AstrocyteGateState as AstrocyteGateState,
    Astrocytes as Astrocytes,
    apply_gated_grads as apply_gated_grads,
    gate_updates as gate_updates,
    scale_by_astrocytes as scale_by_astrocytes,
)
from ._persistence import load as load, save as save
from ._regions import (
    Regions as Regions,
    make_regions as make_regions,
    region_energies as region_energies,
)
from ._store import (
    AbstractEvictionPolicy as AbstractEvictionPolicy,
    Evicted as Evicted,
    EvictLowestPriority as EvictLowestPriority,
    EvictOldest as EvictOldest,
    Footprint as Footprint,
    RejectWhenFull as RejectWhenFull,
    Store as Store,
    discard as discard,
    footprint_bytes as footprint_bytes,
    make_store as make_store,
    recall as recall,
    snapshot as snapshot,
)
