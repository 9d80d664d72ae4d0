"""The zygote's side of ``--preload auto``: import the learned set one module at a time, checked.

A learned module is dropped, by name, when

- its import raises (``import_failed``; e.g. Django's models outside a configured project):
  Python undoes a failed import, so the zygote carries on;
- after it the zygote has a thread it did not have before (``thread``): a forked copy of a
  lock another thread holds deadlocks the child;
- it leaves new file descriptors open (``open_fds``): sockets and files every fork would share;
- it imported app code on the way (``app_code``): the zygote never holds the app's modules.

The last three cannot be undone: the zygote reports every culprit it found in one pass and
exits (kind ``unsafe``); the master starts a fresh zygote without them. Declared ``--preload``
packages are not checked this way: a thread there makes the zygote refuse to fork, as before.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from collections.abc import Sequence

from swapprof._vocabulary import DROP_APP_CODE, DROP_IMPORT_FAILED, DROP_OPEN_FDS, DROP_THREAD
from swapprof.server.generation._imported import AppCode

IMPORT_FAILED, THREAD, OPEN_FDS, APP_CODE = DROP_IMPORT_FAILED, DROP_THREAD, DROP_OPEN_FDS, DROP_APP_CODE
UNDOABLE = frozenset({IMPORT_FAILED})


def read_list(path: str, key: str = "modules") -> list[str]:
    """The module names under ``key`` in the zygote's preload file (``[]`` when it is unreadable):
    ``modules`` to import, ``code_only`` whose bytecode to hold (``_bytecode``)."""
    try:
        with open(path, encoding="utf-8") as f:
            names = json.load(f).get(key, [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str) and n]


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each refers to (not the listing's own)."""
    own = f"/proc/{os.getpid()}/fd"
    found = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue  # the directory listing's own descriptor, closed by now
        if target != own:
            found[int(entry)] = target
    return found


def threads_now() -> tuple[int, set[int]]:
    """(native threads, the idents of Python's threads) of this process, now."""
    try:
        native = len(os.listdir("/proc/self/task"))
    except OSError:
        native = 1
    return native, {t.ident or 0 for t in threading.enumerate()}


def _problem(
    before: tuple[int, set[int]], fds: dict[int, str], app: AppCode, known: set[str]
) -> tuple[str, str] | None:
    native = threads_now()[0]
    if native > before[0]:
        new = [t.name for t in threading.enumerate() if (t.ident or 0) not in before[1]]
        named = ", ".join(repr(n) for n in new) if new else "started outside Python's threading module"
        return THREAD, f"it started a thread ({named})"
    opened = {fd: t for fd, t in open_fds().items() if fds.get(fd) != t}
    if opened:
        shown = ", ".join(f"fd {fd} -> {t}" for fd, t in sorted(opened.items())[:3])
        return OPEN_FDS, f"it left {len(opened)} descriptor(s) open ({shown})"
    pulled = [n for n in sys.modules if n not in known and app.owns(n)]
    if pulled:
        return APP_CODE, f"it imported app code ({', '.join(sorted(pulled)[:3])})"
    return None


def import_checked(names: Sequence[str], app: AppCode) -> tuple[int, dict[str, dict[str, str]]]:
    """Import ``names`` in order, each checked; return (how many are loaded, the dropped ones
    as ``{name: {"reason": ..., "detail": ...}}``)."""
    dropped: dict[str, dict[str, str]] = {}
    loaded = 0
    for name in names:
        if name in sys.modules:
            loaded += 1
            continue
        before, fds, known = threads_now(), open_fds(), set(sys.modules)
        failed: tuple[str, str] | None = None
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:
            failed = IMPORT_FAILED, f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200]
        problem = _problem(before, fds, app, known) or failed  # a failed import may leave a thread too
        if problem is not None:
            dropped[name] = {"reason": problem[0], "detail": problem[1]}
        else:
            loaded += 1
    return loaded, dropped


def unsafe(dropped: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The drops the zygote cannot undo: it must not fork, a fresh one starts without them."""
    return {name: why for name, why in dropped.items() if why["reason"] not in UNDOABLE}
