"""Which modules of this process are not the app's own code: what ``--preload auto`` learns.

A module is the app's (never preloaded) when it is MODULE of ``MODULE:APP`` or lies in its
package tree (for an app inside swapprof, such as the demo, only MODULE's own tree), or when its
file is under ``--app-dir`` or under the working directory (the project) -- unless that file
is under a library root: the standard library, a site-packages directory (a virtualenv kept
inside the project is a library, not the project) or swapprof's own package. Everything else
may be preloaded: built-in and frozen modules, the standard library, installed distributions,
and directories elsewhere on ``sys.path``.

A wrong call costs speed, never correctness: the zygote watches every file it preloaded and is
replaced before it forks from a changed one. Modules that cannot be imported by their name (an
alias such as ``os.path``, ``__main__``, one built at run time without a spec) are left out.

The serving generation's worker 0 reports the list after READY and again after its drain, off
the critical path: a datagram is too small for it, so it goes to ``RUN_DIR/handoff/imported-N.W.json``
and the notify message (stage ``imports``) says how many names it holds.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from swapprof.server import _contract as c
from swapprof.server._contract import GenerationContract
from swapprof.server._notify import Notifier
from swapprof.server._rundir import RunDir

_SKIP = frozenset({"__main__", "__mp_main__"})


def _real(path: str) -> str:
    return os.path.realpath(path)


@functools.lru_cache(maxsize=4096)
def _real_dir(directory: str) -> str:
    return os.path.realpath(directory)


def library_roots() -> tuple[str, ...]:
    """Directories whose modules are libraries even inside the project."""
    import site

    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(getattr(site, "getsitepackages", list)())
    user = getattr(site, "getusersitepackages", lambda: None)()
    if isinstance(user, str):
        roots.add(user)
    import swapprof

    roots.add(os.path.dirname(swapprof.__file__ or ""))
    roots = {r for r in roots if r}
    return tuple(sorted(roots | {_real(r) for r in roots}))  # as spelled, and resolved


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


class AppCode:
    """Tells the app's modules from the rest (see the module docstring)."""

    def __init__(self, app: str, app_dir: str | None = None, cwd: str | None = None) -> None:
        module = app.split(":", 1)[0]
        top = module.split(".")[0]
        self.tree = module if top == "swapprof" else top  # swapprof's own modules are the server's
        self.project = tuple(_real(d) for d in (app_dir, cwd if cwd is not None else os.getcwd()) if d)
        self.libraries = library_roots()

    @classmethod
    def from_contract(cls, contract: GenerationContract) -> AppCode:
        return cls(contract.app, contract.app_dir)

    def owns(self, name: str, module: ModuleType | None = None) -> bool:
        """Whether module ``name`` is the app's own code."""
        if name == self.tree or name.startswith(self.tree + "."):
            return True
        module = sys.modules.get(name) if module is None else module
        for path in _files(module):
            if _under(path, self.libraries):
                continue  # the common case, without a system call
            head, tail = os.path.split(os.path.abspath(path))
            real = os.path.join(_real_dir(head), tail)
            if not _under(real, self.libraries) and _under(real, self.project):
                return True
        return False

    def preloadable(self, modules: Mapping[str, Any] | None = None) -> list[str]:
        """The names in ``modules`` (default ``sys.modules``, in import order) a zygote may import."""
        found = []
        for name, module in list((sys.modules if modules is None else modules).items()):
            if not isinstance(module, ModuleType) or name in _SKIP:
                continue
            spec = getattr(module, "__spec__", None)
            if spec is None or getattr(spec, "name", None) != name:
                continue  # an alias or a module made at run time: not importable by this name
            if not self.owns(name, module):
                found.append(name)
        return found


def _files(module: ModuleType | None) -> list[str]:
    """Where ``module`` lives: its file, or a namespace package's directories."""
    if module is None:
        return []
    path = getattr(module, "__file__", None)
    if isinstance(path, str):
        return [path]
    locations = getattr(module, "__path__", None)
    try:
        return [p for p in locations if isinstance(p, str)] if locations is not None else []
    except TypeError:
        return []


def report(contract: GenerationContract, generation: int, worker: int, notifier: Notifier) -> int:
    """Write the preloadable modules to the run dir and tell the master; return how many."""
    names = AppCode.from_contract(contract).preloadable()
    run_dir = RunDir(contract.run_dir)
    path = run_dir.imported(generation, worker)
    run_dir.write_json(path, {"generation": generation, "worker": worker, "modules": names})
    notifier.send(**{c.F_STAGE: c.STAGE_IMPORTS, c.F_IMPORTS: len(names)})
    return len(names)
