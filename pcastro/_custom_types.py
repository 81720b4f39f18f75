"""jaxtyping aliases with named dimensions, shared by the public signatures."""

from typing import Any, TypeAlias

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

Scalar: TypeAlias = Float[Array, ""]
Batch: TypeAlias = Float[Array, "batch ..."]
Labels: TypeAlias = Int[Array, " batch"]
Mask: TypeAlias = Bool[Array, "..."] | Float[Array, "..."]
NodeEnergies: TypeAlias = Float[Array, " nodes"]
PyTreeDef: TypeAlias = Any

__all__ = [
    "Array",
    "ArrayLike",
    "Batch",
    "Bool",
    "Float",
    "Int",
    "Labels",
    "Mask",
    "NodeEnergies",
    "PRNGKeyArray",
    "PyTreeDef",
    "Scalar",
]
