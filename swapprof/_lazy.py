"""Façade names loaded on first use (PEP 562), for packages a generation imports at spawn.

``__getattr__, __dir__ = lazy(__name__, __all__, {"Name": "module[:attribute]", ...})`` in a
package's ``__init__``: a module given as ``_private`` is relative to the package. The first
access imports the module and caches the value in the package, so later ones cost nothing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy(
    package: str, names: Sequence[str], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` for the names in ``where``."""

    def __getattr__(name: str) -> Any:
        try:
            module, _, attribute = where[name].partition(":")
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        target = f"{package}.{module}" if module.startswith("_") else module
        value = getattr(importlib.import_module(target), attribute or name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
