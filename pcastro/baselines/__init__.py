from ._backprop import backprop_loss as backprop_loss, backprop_step as backprop_step
from ._nonparametric import (
    nearest_class_mean as nearest_class_mean,
    pixel_nearest_neighbour as pixel_nearest_neighbour,
)

__all__ = [
    "backprop_loss",
    "backprop_step",
    "nearest_class_mean",
    "pixel_nearest_neighbour",
]
