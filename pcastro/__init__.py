"""pcastro: predictive coding with astrocytes, in JAX."""

import importlib.metadata

__version__ = importlib.metadata.version("pcastro")
