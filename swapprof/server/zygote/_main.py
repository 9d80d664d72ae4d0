"""The zygote (fork server): ``python -m swapprof.server.zygote``.

Started by the master with the listeners at fds 3.. (LISTEN_FDS) and one end of a
SOCK_SEQPACKET socketpair at SWAPPROF_ZYGOTE_FD. It imports the packages named in
SWAPPROF_PRELOAD -- never app code -- and then serves fork requests:

    master -> zygote: {"cmd": "fork", "env": {...}} + SCM_RIGHTS [output fd]
    master -> zygote: {"cmd": "spare"} + SCM_RIGHTS [output fd, control socket]
    master -> zygote: {"cmd": "check"}        (may it fork now? nothing is forked)
    zygote -> master: {"pid": N} | {"ok": true} | {"error": "...", "kind": "threads" | "stale" | "fork"}
    master -> spare (its control socket): {"env": {...}}; EOF = discarded, exit 0

A child is forked twice (zygote -> short-lived middle -> child) so that the middle's exit
re-parents it to the master, a child subreaper: the master then waits for it like any child.
A forked child re-seeds its random state, takes its environment from the request, and runs
the same entry as an exec'd generation (``_worker.main``). A *spare* is such a child forked
ahead of need (Android's "unspecialized app process" pool, with one entry): it warms the
generation start-up path on a throwaway server, copies ahead the zygote pages an earlier
generation of this zygote copied (``server._cow``), then waits for its environment, so an upgrade
costs neither the fork nor the cold first run of that path, nor most of its copy-on-write faults.

Fork safety: the zygote refuses to fork while it has more than one thread (a forked copy of
a lock held by another thread deadlocks the child), naming the threads; and it refuses when a
preloaded file changed on disk since it was imported (``stale``), so the master replaces it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from swapprof.server import _cow
from swapprof.server._contract import (
    ENV_LISTEN_PID,
    ENV_PRELOAD,
    ENV_PRELOAD_APP,
    ENV_PRELOAD_LEARNED,
    ENV_RUN_DIR,
    ENV_ZYGOTE_FD,
)
from swapprof.server._rundir import RunDir
from swapprof.server.zygote._app import fork_once, import_base, worker_env
from swapprof.server.zygote._filewatch import FileStamps

if TYPE_CHECKING:
    import asyncio

MAX_MESSAGE = 1 << 20


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def thread_problem() -> str | None:
    """A description of the threads that make forking unsafe, or None."""
    import threading

    count = _native_threads()
    if count <= 1:
        return None
    names = [f"{t.name!r}" for t in threading.enumerate() if t is not threading.main_thread()]
    named = ", ".join(names) if names else "started outside Python's threading module"
    return (
        f"the zygote has {count} threads ({named}); forking now could copy a lock held by another "
        "thread into the generation. Remove the thread-starting package from --preload"
    )


def module_files(names: set[str]) -> set[str]:
    """The source files of the modules in ``names`` (what preloading imported)."""
    files = set()
    for name in names:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            files.add(path)
    return files


def _refusal(stamps: FileStamps, full: bool = False) -> dict[str, Any] | None:
    """Why forking now would be wrong (threads, stale preloaded files), or None."""
    problem = thread_problem()
    if problem is not None:
        return {"error": problem, "kind": "threads"}
    changed = stamps.changed(full=full)
    if changed:
        return {"error": f"{len(changed)} preloaded file(s) changed, e.g. {changed[0]}", "kind": "stale"}
    return None


def _send(sock: socket.socket, payload: dict[str, Any]) -> None:
    sock.send(json.dumps(payload).encode())


def _double_fork(child: Callable[[], int], close_in_child: list[int]) -> int:
    """Run ``child`` in a grandchild re-parented to the master; return the grandchild's pid.

    The short-lived middle process is reaped later (``reap_middles``), after the answer: its exit
    tears down a copy of the zygote's address space (~3-4 ms for a FastAPI zygote here), which
    the upgrade waiting for the answer need not wait for. The grandchild is the master's child
    once the middle is gone; the master reaps it only after it exits, and reaps strays."""
    r, w = os.pipe()
    try:
        middle = os.fork()
    except OSError:
        for fd in (r, w, *close_in_child):
            os.close(fd)
        raise
    if middle == 0:
        try:
            os.close(r)
            pid = os.fork()
            if pid == 0:
                os.close(w)
                _run_child(child)  # never returns
            os.write(w, struct.pack("i", pid))
        finally:
            os._exit(0)
    os.close(w)
    for fd in close_in_child:
        os.close(fd)  # the child's now
    _middles.append(middle)
    try:
        data = os.read(r, 4)  # written just before the middle exits (nothing if it died first)
    finally:
        os.close(r)
    if len(data) != 4:
        reap_middles()
        raise OSError("the middle process died before reporting the child's pid")
    return int(struct.unpack("i", data)[0])


_middles: list[int] = []


def reap_middles() -> None:
    """Wait for the middle processes of the forks answered so far (each exits at once)."""
    while _middles:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(_middles.pop(), 0)


def _run_child(child: Callable[[], int]) -> NoReturn:
    """Run a forked child to its end, leaving without the interpreter's teardown, which would
    also touch every object inherited from the zygote and copy its page (measured: ~26 ms of
    CPU and ~4,500 page faults per process, against ~5 ms): ``run_then_leave``."""
    from swapprof.server.generation._leave import run_then_leave

    run_then_leave(child)


def _detach(zygote_fds: list[int], out_fd: int) -> None:
    """First steps of every forked child: close the zygote's own fds, output to ``out_fd``."""
    for fd in zygote_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    import random

    random.seed()  # the zygote's state would repeat in every generation otherwise


def _become_generation(env: dict[str, str], loop: asyncio.AbstractEventLoop | None = None) -> int:
    os.environ.clear()
    env = worker_env(env)  # an app zygote's fork: with what the app's import set, as exec'd
    os.environ.update(env)
    os.environ[ENV_LISTEN_PID] = str(os.getpid())
    from swapprof.server.generation._main import main as worker_main

    return worker_main(loop)


def _pages_file() -> str | None:
    """Where a generation forked from this zygote lists the pages it copied (``_cow``)."""
    run_dir = os.environ.get(ENV_RUN_DIR)
    return str(RunDir(run_dir).cow_pages(os.getpid())) if run_dir else None


def _generation(zygote_fds: list[int], out_fd: int, env: dict[str, str]) -> Callable[[], int]:
    pages = _pages_file()

    def child() -> int:
        _detach(zygote_fds, out_fd)
        _cow.report_to = pages
        return _become_generation(env)

    return child


def _spare(zygote_fds: list[int], out_fd: int, ctl_fd: int) -> Callable[[], int]:
    """A pre-forked generation: warm the start-up path, copy ahead the pages an earlier generation
    of this zygote copied (``_cow``), then wait for the environment."""
    pages = _pages_file()

    def child() -> int:
        _detach(zygote_fds, out_fd)
        _cow.report_to = pages
        ctl = socket.socket(fileno=ctl_fd)
        loop = warm_generation_path()
        if pages is not None:
            with contextlib.suppress(Exception):  # best effort: the generation faults them in
                _cow.populate(_cow.read(pages), stop=lambda: bool(select.select([ctl], [], [], 0)[0]))
        while True:
            try:
                data = ctl.recv(MAX_MESSAGE)
                break
            except InterruptedError:
                continue
        if not data:
            return 0  # discarded by the master (or the master is gone)
        ctl.close()
        return _become_generation(json.loads(data)["env"], loop)

    return child


def warm_generation_path() -> asyncio.AbstractEventLoop | None:
    """Run a generation's start-up once, on a throwaway server and app, in this forked child.

    A forked generation's first run of that path is slow: every object it touches sits on a
    page shared with the zygote, and the first write (a reference count) copies the page. A
    spare pays that, and the first calls' other costs, before it is needed. Returns the event
    loop to run the generation on (None if warming failed: the spare then starts cold)."""
    from swapprof.server._contract import DEFAULT_HTTP, DEFAULT_LOOP, ENV_HTTP, ENV_LOOP
    from swapprof.server._stack import loop_factory

    # the zygote's environment is the master's contract: the loop and parser it asks for
    loop = loop_factory(os.environ.get(ENV_LOOP) or DEFAULT_LOOP)()
    try:
        loop.run_until_complete(_warm_once(os.environ.get(ENV_HTTP) or DEFAULT_HTTP))
    except Exception as exc:
        print(f"swapprof: warming the spare failed ({exc!r}); it starts cold", file=sys.stderr)
        loop.close()
        return None
    return loop


async def _warm_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _warm_once(http: str) -> None:
    from swapprof.server.generation._serving import GenerationServer

    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        server = GenerationServer(_warm_app, [listener], generation=0, metrics_path=None, http=http)
        await server.start()
        await server.self_probe(5.0)
        await server.serve()
        await server.stop_accepting()
        await server.drain(0.0, 1.0)
        await server.shutdown_lifespan()
    finally:
        listener.close()


def _warm_up() -> None:
    """Pay first-use costs once, before forking: uvicorn's config loading (logging set-up,
    protocol class lookup) would otherwise run cold in every generation's ready phase."""
    with contextlib.suppress(Exception):
        import uvicorn

        async def app(scope: Any, receive: Any, send: Any) -> None:
            return None

        uvicorn.Config(app, lifespan="auto", log_level="warning", access_log=False).load()


def serve(
    sock: socket.socket,
    loaded: set[str],
    started_ns: int | None = None,
    hello: dict[str, Any] | None = None,
    also_watch: Iterable[str] = (),
    one_shot: bool = False,
) -> int:
    """``one_shot``: an exec'd generation's app zygote (``_app``), on the upgrade's critical
    path and gone after it: no stale files to watch, no full collection first."""
    import gc

    _warm_up()
    stamps = FileStamps(module_files(loaded) | set(also_watch), not_after_ns=started_ns)
    # Move everything preloaded out of the collector's reach: a forked generation's first
    # collections then do not walk (and copy-on-write fault in) the whole inherited heap.
    if not one_shot:
        gc.collect()
    gc.freeze()
    problem = thread_problem()
    _send(sock, {"ready": problem is None, "error": problem, "kind": "threads" if problem else None,
                 "pid": os.getpid(), "modules": len(stamps.stamps), "inotify": stamps.watching,
                 **(hello or {})})  # fmt: skip
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 4)
        except InterruptedError:
            continue
        if not data:
            return 0  # the master closed its end
        request = json.loads(data)
        command = request.get("cmd")

        def answer(payload: dict[str, Any], request_id: object = request.get("id")) -> None:
            _send(sock, {**payload, "id": request_id})  # the master matches answers to requests

        if command == "ping":
            answer({"pong": True})
            continue
        # forking a spare is off the upgrade's path: compare every file, whatever inotify says
        refusal = _refusal(stamps, full=command == "spare")
        if command == "check" or refusal is not None:
            for fd in fds:
                os.close(fd)
            answer(refusal or {"ok": True})
            continue
        ours = [sock.fileno(), *stamps.filenos()]  # closed in every child
        try:
            if command == "spare" and len(fds) == 2:
                out_fd, ctl_fd = fds
                pid = _double_fork(_spare(ours, out_fd, ctl_fd), [out_fd, ctl_fd])
            elif command == "fork" and len(fds) == 1 and isinstance(request.get("env"), dict):
                pid = (fork_once if one_shot else _double_fork)(
                    _generation(ours, fds[0], request["env"]), fds
                )
            else:
                for fd in fds:
                    os.close(fd)
                answer({"error": f"malformed request {command!r} with {len(fds)} fds", "kind": "protocol"})
                continue
            answer({"pid": pid})
        except OSError as exc:
            answer({"error": f"fork failed: {exc}", "kind": "fork"})
        reap_middles()


def _app_zygote(sock: socket.socket) -> NoReturn:
    """An upgrade's app zygote (``_app``): import the app, fork its workers, go. It leaves by
    ``os._exit`` at once, whatever happens: a template never served, so the app's atexit handlers
    (and its non-daemon threads, when that was the refusal) are its workers' business."""
    code = 1
    try:
        from swapprof.server.zygote._app import import_app_checked

        imported = import_app_checked()
        if imported.pop("ready", False):
            os.environ.pop(ENV_RUN_DIR, None)  # no pages list (``_cow``): no spare comes after it
            code = serve(sock, set(), None, imported, one_shot=True)
        else:
            _send(sock, imported)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main() -> int:
    import time

    started_ns = time.time_ns()  # a preloaded file written after this changed while we imported
    sock = socket.socket(fileno=int(os.environ.pop(ENV_ZYGOTE_FD)))
    if os.environ.pop(ENV_PRELOAD_APP, ""):
        _app_zygote(sock)  # never returns

    prefixes = [p for p in os.environ.get(ENV_PRELOAD, "").split(",") if p]
    import importlib

    already = set(sys.modules)
    import_base()
    failed = []
    for name in prefixes:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    if failed:
        _send(sock, {"ready": False, "error": "preload failed: " + "; ".join(failed), "kind": "preload"})
        return 1
    hello = None
    held: list[str] = []
    learned = os.environ.pop(ENV_PRELOAD_LEARNED, "")
    if learned:  # --preload auto: what the serving generation imported, one module at a time
        from swapprof.server.generation._imported import AppCode
        from swapprof.server.zygote import _bytecode
        from swapprof.server.zygote._learned import IMPORT_FAILED, import_checked, read_list, unsafe

        loaded, dropped = import_checked(read_list(learned), AppCode.from_contract(_contract()))
        culprits = unsafe(dropped)
        if culprits:
            error = "; ".join(f"{name}: {why['detail']}" for name, why in culprits.items())
            _send(sock, {"ready": False, "error": error, "kind": "unsafe", "dropped": dropped})
            return 1
        failed_here = [name for name, why in dropped.items() if why["reason"] == IMPORT_FAILED]
        held = _bytecode.install(_bytecode.hold([*read_list(learned, "code_only"), *failed_here]))
        hello = {"learned": loaded, "dropped": dropped, "code_held": len(held)}
    return serve(sock, set(sys.modules) - already, started_ns, hello, held)


def _contract() -> Any:
    from swapprof.server._contract import GenerationContract

    return GenerationContract.from_env()
