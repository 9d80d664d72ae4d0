"""Stale versions: functions and classes of earlier module versions that are still alive.

After each reload the ledger keeps weak references to what the module defines (its functions,
its classes and their methods). An object of an earlier version that is still alive after a full
collection, and is not also part of the current version, is stale: something still refers to it.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Iterator
from typing import Any, Literal

from swapprof.reload._records import StaleObject
from swapprof.reload._referrers import referrer_paths

Kind = Literal["function", "class"]
Entry = tuple[weakref.ref[Any], str, Kind]
#: (module, version, weak reference, qualname, kind) of one stale object
Found = tuple[str, int, weakref.ref[Any], str, Kind]


def definitions(module: types.ModuleType) -> Iterator[tuple[Any, Kind]]:
    """Functions and classes defined by ``module`` (by ``__module__``), with their methods."""
    name, seen = module.__name__, set()
    pending = list(vars(module).values())
    while pending:
        value = pending.pop()
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        elif isinstance(value, property):
            value = value.fget
        if id(value) in seen or not isinstance(value, types.FunctionType | type):
            continue
        seen.add(id(value))
        if value.__module__ != name:
            continue
        if isinstance(value, types.FunctionType):
            yield value, "function"
        else:
            yield value, "class"
            pending.extend(vars(value).values())


class VersionLedger:
    """Weak references to each recorded version's definitions, per module."""

    def __init__(self) -> None:
        self._versions: dict[str, list[tuple[int, list[Entry]]]] = {}

    def record(self, module: types.ModuleType, version: int) -> None:
        """Remember what ``module`` defines now as ``version``."""
        entries = [(weakref.ref(obj), obj.__qualname__, kind) for obj, kind in definitions(module)]
        self._versions.setdefault(module.__name__, []).append((version, entries))

    def stale(self) -> list[Found]:
        """Alive objects of all but the latest version of each module, oldest version first.

        Versions with nothing alive are forgotten. Returns weak references only, so the caller
        holds nothing alive by accident.
        """
        found: list[Found] = []
        for module, versions in self._versions.items():
            current = {id(ref()) for ref, _, _ in versions[-1][1] if ref() is not None}
            kept = []
            for version, entries in versions[:-1]:
                alive = [e for e in entries if e[0]() is not None and id(e[0]()) not in current]
                found.extend((module, version, ref, qualname, kind) for ref, qualname, kind in alive)
                if alive:
                    kept.append((version, alive))
            self._versions[module] = [*kept, versions[-1]]
        return found

    def stale_objects(self, paths: int) -> tuple[StaleObject, ...]:
        """``stale()`` as records, with a referrer path for the ``paths`` oldest objects."""
        found = self.stale()
        worst = [(i, found[i][2]()) for i in range(min(paths, len(found)))]
        alive = [(i, obj) for i, obj in worst if obj is not None]
        routes = dict(zip((i for i, _ in alive), referrer_paths([obj for _, obj in alive]), strict=True))
        del worst, alive
        return tuple(
            StaleObject(module, qualname, kind, version, (routes[i],) if routes.get(i) else ())
            for i, (module, version, _, qualname, kind) in enumerate(found)
        )
