"""jaxtyping aliases shared by the public signatures."""

from typing import TypeAlias

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

Scalar: TypeAlias = Float[Array, ""]

__all__ = ["Array", "ArrayLike", "Bool", "Float", "Int", "PRNGKeyArray", "Scalar"]
