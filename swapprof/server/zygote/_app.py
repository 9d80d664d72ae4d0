"""The one-shot zygote of an exec'd generation with N workers: import the app once, checked.

Started by the master with ``SWAPPROF_PRELOAD_APP=1`` for one upgrade only. It imports what a
generation imports before READY (the server stack, the loop and parser) and then the app itself, exactly
as a generation would (``--app-dir`` first on sys.path, ``MODULE:ATTR`` checked), and the master
forks the generation's N workers from it: one interpreter's start-up and import instead of N
side by side on the same cores (gunicorn's ``--preload``, with the zygote's fork-safety checks).

The app cannot be forked safely, and the master execs the N workers instead, when its import
raises (each exec'd worker then fails the same way, and the upgrade rolls back with the import's
own error), leaves a thread behind, or leaves a socket or another kernel object that every fork
would share (an event loop's epoll, an eventfd) open. Plain files and pipes are allowed: forks
sharing an append-mode log file is what gunicorn's preloaded apps do too. What the import sets
in the environment (``load_dotenv()``, say) each fork finds again, as an exec'd worker would;
``SWAPPROF_WORKER`` is unset during the import (there is no worker yet).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from swapprof.server._contract import ENV_NOTIFY_SOCKET, ENV_PRELOAD_BASE, ENV_WORKER

SHARED_KINDS = ("socket:", "anon_inode:")
"""What a descriptor left open by the app's import must not be (see the module docstring)."""


def import_base() -> None:
    """Import the modules ``SWAPPROF_PRELOAD_BASE`` names (swapprof's own stack), best effort:
    a missing optional part is imported later, when needed."""
    import importlib

    for name in os.environ.pop(ENV_PRELOAD_BASE, "").split(","):
        if name:
            with contextlib.suppress(Exception):
                importlib.import_module(name)


def import_app_checked() -> dict[str, Any]:
    """Import the contract's app; the hello the zygote sends (``ready`` False with ``kind``
    ``app`` or ``unsafe`` and an ``error`` when the workers must be exec'd), with the import's
    CLOCK_MONOTONIC stamps every forked worker reports as its own ``started`` and ``imported``."""
    started = time.monotonic_ns()
    from swapprof.server._contract import GenerationContract
    from swapprof.server.zygote._learned import open_fds, threads_now

    contract = GenerationContract.from_env()
    import_base()  # what a generation imports before READY

    if contract.app_dir:
        sys.path.insert(0, contract.app_dir)
    from swapprof.server.generation._app import check_app, import_app

    for name in (ENV_WORKER, ENV_NOTIFY_SOCKET):  # no worker yet; nobody to notify but the master
        os.environ.pop(name, None)
    threads, fds, env = threads_now()[0], open_fds(), dict(os.environ)
    try:
        check_app(import_app(contract.app), contract.app, contract.interface)
    except BaseException as exc:  # also SystemExit: the workers' own exec reports it properly
        return {"ready": False, "kind": "app", "error": f"{type(exc).__name__}: {exc}"[:300]}
    imported = time.monotonic_ns()
    if threads_now()[0] > threads:
        return {"ready": False, "kind": "threads", "error": "the app's import started a thread"}
    shared = sorted(
        f"fd {fd} -> {target}"
        for fd, target in open_fds().items()
        if fds.get(fd) != target and target.startswith(SHARED_KINDS)
    )
    if shared:
        return {
            "ready": False,
            "kind": "unsafe",
            "error": f"the app's import left {len(shared)} descriptor(s) open ({', '.join(shared[:3])})",
        }
    _changes["set"] = {k: v for k, v in os.environ.items() if env.get(k) != v}
    _changes["unset"] = [k for k in env if k not in os.environ]
    return {"ready": True, "import_started_ns": started, "import_ended_ns": imported, "pid": os.getpid()}


_changes: dict[str, Any] = {}
"""What the app's import changed in the environment: ``set`` (name -> value), ``unset``."""


def _ours(name: str) -> bool:
    """An environment variable swapprof sets for each worker: the request's value wins."""
    return name.startswith(("SWAPPROF_", "LISTEN_", "NOTIFY_SOCKET", "TRACEPARENT", "TRACESTATE"))


def worker_env(env: dict[str, str]) -> dict[str, str]:
    """A fork's environment: the request's, with what the app's import set or unset (a .env
    file, say) applied as an exec'd worker would find it; unchanged outside an app zygote."""
    if not _changes:
        return env
    found = {k: v for k, v in env.items() if k not in _changes["unset"]}
    found.update((k, v) for k, v in _changes["set"].items() if not _ours(k))
    return found


def fork_once(child: Callable[[], int], close_in_child: list[int]) -> int:
    """An app zygote's fork: the child stays ours until we exit, right after the last worker
    of the generation is forked, and then re-parents to the master; no middle process to wait
    for (~5 ms less per worker than the zygote's double fork)."""
    try:
        pid = os.fork()
    except OSError:
        for fd in close_in_child:
            os.close(fd)
        raise
    if pid == 0:
        from swapprof.server.generation._leave import run_then_leave

        run_then_leave(child)
    for fd in close_in_child:
        os.close(fd)  # the child's now
    return pid
