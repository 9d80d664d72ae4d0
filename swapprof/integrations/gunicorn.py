"""swapprof for gunicorn: every HUP and USR2 upgrade as one trace, one record, the same metrics.

As gunicorn's config module::

    gunicorn -c python:swapprof.integrations.gunicorn -w 2 myapp:app

or at the end of your own ``gunicorn.conf.py`` (your hooks keep running, chained with swapprof's)::

    from swapprof.integrations import gunicorn as swapprof_gunicorn
    swapprof_gunicorn.install(globals())

What each hook does (gunicorn calls them; see ``gunicorn/arbiter.py``):

- ``on_starting`` (master): starts the recorder (``_gunicorn_master``): its thread, the event
  socket, the loopback ``/metrics`` (address in ``RUN_DIR/state.json`` and gunicorn's log).
- ``nworkers_changed`` / ``on_reload`` (master, HUP): the upgrade is requested (the first of
  them inside the reload, before the configuration is read again).
- ``pre_fork`` (master): the worker's generation and index (0..N-1 within its generation).
- ``post_fork``, ``post_worker_init``, ``worker_exit`` (worker): ``_gunicorn_worker``.
- ``child_exit`` (master): an old worker was reaped. ``pre_exec`` (the USR2 child, just before
  the new master's exec): the upgrade goes into ``cfg.env_orig``, and the old master is told
  which one it handed over (it records it as rolled back if the new master goes first:
  ``_gunicorn_usr2``). ``on_exit``: flush and stop.
- The arbiter's ``kill_worker`` is wrapped (on this arbiter object only) to stamp when an old
  worker is told to stop: gunicorn has no hook there, and that moment starts the service gap.
  Its ``reap_workers`` is wrapped to note why gunicorn halts (the ``HaltServer`` it raises).
- ``atexit`` (master) stops the recorder if ``on_exit`` never ran: gunicorn skips it when a
  second worker fails to boot while it halts for the first (that ``HaltServer`` escapes
  ``Arbiter.halt``), or when its main loop fails; the upgrade is still recorded or handed back.

Nothing swapprof does in a hook raises into gunicorn: a failure is logged at debug level.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from swapprof.integrations import _events as ev

log = logging.getLogger("swapprof.integrations")

HOOKS = (
    "on_starting",
    "nworkers_changed",
    "on_reload",
    "pre_fork",
    "post_fork",
    "post_worker_init",
    "worker_exit",
    "child_exit",
    "pre_exec",
    "on_exit",
)
"""The gunicorn settings this module sets (each one of gunicorn's server hooks)."""
_AFTER_USER = frozenset({"post_worker_init", "worker_exit", "on_exit"})
"""Hooks where the user's own runs first (its work belongs to the phase swapprof's stamp ends)."""

_master: Any = None  # MasterRecorder, in the master
_inherited_master: Any = None  # the master's, in a process it forked
_worker: Any = None  # WorkerSide, in a worker
_forking: tuple[int, int] = (1, 0)  # (generation, index) of the worker being forked
_ages: dict[int, tuple[int, int]] = {}  # worker age -> (generation, index), main thread only
_generation = 1
_reloads = 0


def _safely(fn: Callable[..., None]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # never into gunicorn
            log.debug("swapprof: %s failed", fn.__name__, exc_info=True)

    run.__name__ = fn.__name__
    return run


# ---------------------------------------------------------------- master
@_safely
def _on_starting(server: Any) -> None:
    global _master, _generation
    if _master is not None:
        return
    from swapprof.integrations._gunicorn_master import MasterRecorder

    _master = MasterRecorder(server, ev.run_dir().resolve(), os.environ)  # type: ignore[arg-type]
    _generation = _master.stitcher.generation
    os.register_at_fork(
        before=lambda: _master and _master.before_fork(),
        after_in_parent=lambda: _master and _master.after_fork_in_parent(),
        after_in_child=_after_fork_in_child,
    )
    _wrap_kill_worker(server)
    _wrap_reap_workers(server)
    atexit.register(_at_exit)
    _master.start()
    server.log.info(
        "swapprof: /metrics on http://%s, upgrades in %s", _master.endpoint.address, _master.run_dir
    )


def _after_fork_in_child() -> None:
    """A worker, or the USR2 child (whose ``pre_exec`` still reads the recorder's numbers)."""
    global _master, _inherited_master
    if _master is not None:
        _master.after_fork_in_child()
        _inherited_master, _master = _master, None


def _wrap_kill_worker(server: Any) -> None:
    original = server.kill_worker

    def kill_worker(pid: int, sig: int) -> None:
        if _master is not None:
            try:
                _master.note(ev.TERM, target=pid, sig=signal.Signals(sig).name)
            except Exception:
                log.debug("swapprof: cannot note a kill", exc_info=True)
        original(pid, sig)

    server.kill_worker = kill_worker


def _wrap_reap_workers(server: Any) -> None:
    original = server.reap_workers

    def reap_workers() -> None:
        try:
            original()
        except BaseException as exc:
            if _master is not None:
                _master.halting(exc)
            raise

    server.reap_workers = reap_workers


@_safely
def _nworkers_changed(server: Any, new_value: int, old_value: int | None) -> None:
    _reload_began(server)


@_safely
def _on_reload(server: Any) -> None:
    _reload_began(server)


def _reload_began(server: Any) -> None:
    """Inside ``Arbiter.reload`` (its counter moved): one upgrade per reload, however many hooks."""
    global _reloads, _generation
    count = getattr(server, "_stats", {}).get("reloads")
    if _master is None or count is None or count <= _reloads:
        return
    _reloads = count
    _generation += 1
    _master.note(ev.RELOAD, generation=_generation)


@_safely
def _pre_fork(server: Any, worker: Any) -> None:
    global _forking
    live = {w.age for w in getattr(server, "WORKERS", {}).values()}
    for age in [a for a in _ages if a not in live]:
        del _ages[age]
    used = {index for generation, index in _ages.values() if generation == _generation}
    index = next(i for i in range(len(used) + 1) if i not in used)
    _ages[worker.age] = _forking = (_generation, index)
    if _master is not None:
        _master.note(ev.FORK, generation=_generation, index=index)


@_safely
def _child_exit(server: Any, worker: Any) -> None:
    if _master is not None:
        _master.note(ev.REAPED, target=worker.pid)


@_safely
def _pre_exec(server: Any) -> None:
    """In the USR2 child, just before gunicorn execs the new master with ``cfg.env_orig``."""
    from swapprof.integrations._gunicorn_master import ENV_UPGRADE

    if _inherited_master is not None:
        server.cfg.env_orig[ENV_UPGRADE] = _inherited_master.usr2_environment(time.monotonic_ns())


@_safely
def _on_exit(server: Any) -> None:
    _at_exit()


def _at_exit() -> None:
    """``on_exit``, or the interpreter's exit when gunicorn skipped it: once, in the master."""
    global _master
    master, _master = _master, None
    if master is not None and master.pid == os.getpid():
        try:
            master.stop()
        except Exception:  # never into gunicorn's exit
            log.debug("swapprof: stopping the recorder failed", exc_info=True)


# ---------------------------------------------------------------- worker
@_safely
def _post_fork(server: Any, worker: Any) -> None:
    global _worker
    ns = time.monotonic_ns()
    from swapprof.integrations._gunicorn_master import socket_path
    from swapprof.integrations._gunicorn_worker import WorkerSide
    from swapprof.telemetry._setup import forget

    generation, index = _forking
    path = socket_path(ev.run_dir().resolve(), os.getppid())
    _worker = WorkerSide(ev.Sender(str(path)), generation, index)
    _worker.emit(ev.STARTED, ns)
    forget()


@_safely
def _post_worker_init(worker: Any) -> None:
    if _worker is not None:
        _worker.emit(ev.IMPORTED)
        _worker.wrap(worker)


@_safely
def _worker_exit(server: Any, worker: Any) -> None:
    if _worker is not None:
        _worker.emit(ev.STOPPED)


# ---------------------------------------------------------------- the settings gunicorn reads
_OURS: dict[str, Callable[..., None]] = {
    "on_starting": _on_starting,
    "nworkers_changed": _nworkers_changed,
    "on_reload": _on_reload,
    "pre_fork": _pre_fork,
    "post_fork": _post_fork,
    "post_worker_init": _post_worker_init,
    "worker_exit": _worker_exit,
    "child_exit": _child_exit,
    "pre_exec": _pre_exec,
    "on_exit": _on_exit,
}


def _chain(name: str, user: Callable[..., Any] | None) -> Callable[..., Any]:
    """swapprof's hook ``name`` and the user's, as one callable of gunicorn's arity for ``name``."""
    ours = _OURS[name]
    if user is None or getattr(user, "_swapprof", False):
        first, second = ours, None
    elif name in _AFTER_USER:
        first, second = user, ours
    else:
        first, second = ours, user

    def call(args: tuple[Any, ...]) -> None:
        first(*args)
        if second is not None:
            second(*args)

    chained: Callable[..., Any]
    if name == "post_worker_init":

        def chained(worker: Any) -> None:
            call((worker,))
    elif name in ("pre_fork", "post_fork", "worker_exit", "child_exit"):

        def chained(server: Any, worker: Any) -> None:
            call((server, worker))
    elif name == "nworkers_changed":

        def chained(server: Any, new_value: int, old_value: int | None) -> None:
            call((server, new_value, old_value))
    else:

        def chained(server: Any) -> None:
            call((server,))

    setattr(chained, "_swapprof", True)  # noqa: B010 - marks a chained hook
    chained.__name__ = name
    return chained


def install(namespace: MutableMapping[str, Any]) -> None:
    """Add swapprof's hooks to a gunicorn config module's ``namespace`` (``globals()``), each
    chained with the hook of that name already defined there."""
    for name in HOOKS:
        namespace[name] = _chain(name, namespace.get(name))


on_starting = _chain("on_starting", None)
nworkers_changed = _chain("nworkers_changed", None)
on_reload = _chain("on_reload", None)
pre_fork = _chain("pre_fork", None)
post_fork = _chain("post_fork", None)
post_worker_init = _chain("post_worker_init", None)
worker_exit = _chain("worker_exit", None)
child_exit = _chain("child_exit", None)
pre_exec = _chain("pre_exec", None)
on_exit = _chain("on_exit", None)
