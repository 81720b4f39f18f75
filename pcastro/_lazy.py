"""Public names loaded on first use (PEP 562), so that `import pcastro` and `pcastro --help`
do not pay for importing JAX until something needs it."""

import importlib
import sys
from collections.abc import Callable


def lazy_exports(
    package: str, exports: dict[str, tuple[str, ...]]
) -> tuple[Callable, Callable, list[str]]:
    """`(__getattr__, __dir__, __all__)` for a package whose public names are loaded from
    their modules on first access and then cached in the package.

    **Arguments:**

    - `package`: the package's `__name__`.
    - `exports`: relative module name -> the public names it provides; a subpackage
      exports itself, e.g. `{".astro": ("astro",), "._network": ("mlp", "Network")}`.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = importlib.import_module(module, package)
        if name != module.lstrip("."):
            value = getattr(value, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, sorted(where)
