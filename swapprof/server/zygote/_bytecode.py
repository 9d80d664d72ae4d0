"""The bytecode of learned modules the zygote cannot import: read once, run in every fork.

Django's models modules (``django.contrib.auth.models`` and the ones that import them) need the
project's settings -- app code the zygote never holds -- so their import fails in the zygote
(``import_failed``) and every generation imports them afresh. Executing them is the app's
business (model classes are built from its settings), but finding their files, reading the
``.pyc`` files and unmarshalling them is not: about 3 ms of a ``startproject`` site's ~30 ms
``import`` phase. The zygote reads their code objects ahead (``hold``) and puts a finder first
on ``sys.meta_path`` (``HeldCode``); in a forked generation the import then executes the code
object the zygote holds instead of reading the file.

Safe because nothing runs early: only the code object is made ahead, the module executes in
the generation as before. A module is held only when its parent package is loaded already (so
finding it imports nothing) and a plain ``SourceFileLoader`` would load it; its file joins the
watched ones, so a changed file makes the zygote stale and it is replaced before it forks. A
held code object is used once: a later ``importlib.reload`` reads the file.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from importlib.machinery import ModuleSpec, SourceFileLoader
from types import CodeType, ModuleType

Held = dict[str, tuple[str, CodeType]]  # name -> (file, code object)


class _HeldLoader(SourceFileLoader):
    """A SourceFileLoader whose first ``get_code`` returns the code object the zygote read."""

    def __init__(self, fullname: str, path: str, code: CodeType) -> None:
        super().__init__(fullname, path)
        self._held: CodeType | None = code

    def get_code(self, fullname: str) -> CodeType | None:
        code, self._held = self._held, None
        if code is not None and fullname == self.name:
            return code
        return super().get_code(fullname)


class HeldCode(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: finds a held module as the path finder does, with its code."""

    def __init__(self, held: Held) -> None:
        self.held = held

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        entry = self.held.pop(fullname, None)
        if entry is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin != entry[0] or type(spec.loader) is not SourceFileLoader:
            return None  # not where the zygote found it: the normal finders decide
        spec.loader = _HeldLoader(fullname, entry[0], entry[1])
        return spec


def hold(names: Iterable[str]) -> Held:
    """Read the code objects of ``names`` (those not loaded, whose parent package is)."""
    held: Held = {}
    for name in names:
        parent = name.rpartition(".")[0]
        if name in sys.modules or (parent and parent not in sys.modules):
            continue
        try:
            spec = importlib.util.find_spec(name)
            if spec is None or type(spec.loader) is not SourceFileLoader or not spec.origin:
                continue
            code = spec.loader.get_code(name)
        except Exception:  # best effort: the generation imports it the normal way
            continue
        if code is not None:
            held[name] = (spec.origin, code)
    return held


def install(held: Held) -> list[str]:
    """Put a finder for ``held`` first on ``sys.meta_path``; return the files to watch."""
    if held:
        sys.meta_path.insert(0, HeldCode(held))
    return [path for path, _ in held.values()]
