"""Function names for (filename, line) pairs, for tracemalloc tracebacks that carry no names.

Names come from the live code objects of the module that owns the file (functions and classes
of its namespace, and everything nested in their ``co_consts``), so they are CPython's own
``co_qualname`` and agree with CPU profiles. Nothing is parsed (parsing while tracemalloc
traces is slow) and line tables are read only for the few code objects that can hold a line.
Lines no function owns are ``<module>`` (class bodies too: their code is gone after import).
A comprehension and the function running it share a line; the caller frame tells them apart.
"""

from __future__ import annotations

import bisect
import os
import sys
from types import CodeType, FunctionType, ModuleType

from swapprof.pprof._model import Frame

MODULE = -1
UNKNOWN = ("<unknown>", 0)
#: Run only by their parent, on the line that defines them (lambdas run from anywhere).
_INLINE = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})


def _roots(module: ModuleType, filename: str) -> list[CodeType]:
    """Code objects of the functions a module defines, methods of its classes included."""
    found: list[CodeType] = []
    seen: set[int] = set()
    todo: list[object] = list(vars(module).values())
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, type) and item.__module__ == module.__name__:
            todo.extend(vars(item).values())
        elif isinstance(item, staticmethod | classmethod):
            todo.append(item.__func__)
        elif isinstance(item, property):
            todo.extend(f for f in (item.fget, item.fset, item.fdel) if f is not None)
        elif isinstance(item, FunctionType):
            if item.__code__.co_filename == filename:
                found.append(item.__code__)
            if (wrapped := getattr(item, "__wrapped__", None)) is not None:
                todo.append(wrapped)
    return found


class _File:
    """The code objects of one file, sorted by first line, with parents and lazy line sets."""

    def __init__(self, module: ModuleType, filename: str) -> None:
        roots = _roots(module, filename)
        nested = {c for root in roots for c in root.co_consts if isinstance(c, CodeType)}
        parents: dict[CodeType, CodeType | None] = {}
        todo: list[tuple[CodeType, CodeType | None]] = [(c, None) for c in roots if c not in nested]
        while todo:
            code, parent = todo.pop()
            if code not in parents:
                parents[code] = parent
                todo.extend((c, code) for c in code.co_consts if isinstance(c, CodeType))
        self.codes = sorted(parents, key=lambda c: c.co_firstlineno)
        self.firsts = [c.co_firstlineno for c in self.codes]
        self.parents = parents
        self._lines: dict[CodeType, set[int | None]] = {}

    def owns(self, code: CodeType, line: int) -> bool:
        lines = self._lines.get(code)
        if lines is None:
            lines = self._lines[code] = {ln for _start, _end, ln in code.co_lines()}
            lines.discard(None)
            if len(lines) > 1 and code.co_name not in _INLINE:
                # the def line executes in the parent; the function only has its prologue there
                lines.discard(next((ln for _s, _e, ln in code.co_lines() if ln is not None), None))
        return line in lines

    def holders(self, line: int) -> list[CodeType | None]:
        """Code objects with instructions on ``line``, innermost first; None is the module."""
        at = bisect.bisect_right(self.firsts, line) - 1
        code = self.codes[at] if at >= 0 else None
        found: list[CodeType | None] = []
        while code is not None:
            if self.owns(code, line):
                found.append(code)
            code = self.parents[code]
        if not found or found[-1].co_name in _INLINE:  # type: ignore[union-attr]
            found.append(None)  # module code ran it (or runs the line itself)
        return found


#: Indexes survive snapshots (building one while tracemalloc traces is slow); an entry is
#: rebuilt when its module object, its namespace size or the file's mtime changes (a reload).
_CACHE: dict[str, tuple[tuple[int, int, int], _File]] = {}
_CACHE_SIZE = 1024


def _cached(filename: str, module: ModuleType) -> _File:
    try:
        mtime = os.stat(filename).st_mtime_ns if not filename.startswith("<") else 0
    except OSError:
        mtime = 0
    key = (id(module), len(vars(module)), mtime)
    hit = _CACHE.get(filename)
    if hit is not None and hit[0] == key:
        return hit[1]
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    index = _File(module, filename)
    _CACHE[filename] = (key, index)
    return index


_ELSEWHERE = object()  # "the caller ran another file"


class SourceNames:
    """Names the frames of one snapshot, oldest call first; one instance per snapshot.

    Lookups allocate nothing once seen (nested dicts, no key tuples): under tracemalloc every
    allocation of ours is traced, which would make naming a big heap slow.
    """

    def __init__(self) -> None:
        self._modules: dict[str, ModuleType] | None = None
        self._files: dict[str, _File | None] = {}
        self._memo: dict[str, dict[int, dict[object, tuple[Frame, object]]]] = {}

    def _file(self, filename: str) -> _File | None:
        if filename not in self._files:
            if self._modules is None:
                self._modules = {}
                for name, module in list(sys.modules.items()):
                    if isinstance(module, ModuleType):
                        self._modules[f"<frozen {name}>"] = module
                        if isinstance(path := getattr(module, "__file__", None), str):
                            self._modules.setdefault(path, module)
            owner = self._modules.get(filename)
            self._files[filename] = _cached(filename, owner) if owner is not None else None
        return self._files[filename]

    def frame(self, filename: str, line: int, caller_file: str, caller_scope: object) -> tuple[Frame, object]:
        """The profile frame at ``filename:line`` and its scope (pass both on to the callee)."""
        context = caller_scope if caller_file == filename else _ELSEWHERE
        by_line = self._memo.get(filename)
        if by_line is None:
            by_line = self._memo[filename] = {}
        by_caller = by_line.get(line)
        if by_caller is None:
            by_caller = by_line[line] = {}
        known = by_caller.get(context)
        if known is None:
            name, first, scope = self._resolve(filename, line, context)
            known = by_caller[context] = ((name, filename, first, line), scope)
        return known

    def _resolve(self, filename: str, line: int, caller_scope: object) -> tuple[str, int, object]:
        index = self._file(filename)
        if index is None:
            return (*UNKNOWN, None)
        found = index.holders(line)
        chosen = found[-1]  # outermost, unless the caller shows it is a child of the caller
        if caller_scope is not _ELSEWHERE:
            chosen = next((c for c in found if c is not None and index.parents[c] is caller_scope), chosen)
        if chosen is None:
            return ("<module>", 1, None)
        return (chosen.co_qualname, chosen.co_firstlineno, chosen)
