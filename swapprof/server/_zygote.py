"""The zygote (fork server): ``python -m swapprof.server._zygote``.

Started by the master with the listeners at fds 3.. (LISTEN_FDS) and one end of a
SOCK_SEQPACKET socketpair at SWAPPROF_ZYGOTE_FD. It imports the packages named in
SWAPPROF_PRELOAD -- never app code -- and then serves fork requests:

    master -> zygote: {"cmd": "fork", "env": {...}} + SCM_RIGHTS [stdout fd]
    zygote -> master: {"pid": N} | {"error": "...", "kind": "threads" | "stale" | "fork"}

A generation is forked twice (zygote -> short-lived middle -> generation) so that the middle's
exit re-parents it to the master, a child subreaper: the master then waits for it like any
child. The forked generation re-seeds its random state, takes its environment from the
request, and runs the same entry as an exec'd generation (``_worker.main``).

Fork safety: the zygote refuses to fork while it has more than one thread (a forked copy of
a lock held by another thread deadlocks the child), naming the threads; and it refuses when a
preloaded file changed on disk since it was imported (``stale``), so the master replaces it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import sys
from typing import Any

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


def fingerprint(names: set[str]) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of the file of every module in ``names`` (what preloading imported)."""
    prints: dict[str, tuple[int, int]] = {}
    for name in names:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if not path:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        prints[path] = (st.st_mtime_ns, st.st_size)
    return prints


def changed_files(before: dict[str, tuple[int, int]]) -> list[str]:
    changed = []
    for path, stamp in before.items():
        try:
            st = os.stat(path)
        except OSError:
            changed.append(path)
            continue
        if (st.st_mtime_ns, st.st_size) != stamp:
            changed.append(path)
    return changed


def _send(sock: socket.socket, payload: dict[str, Any]) -> None:
    sock.send(json.dumps(payload).encode())


def _fork_generation(sock: socket.socket, env: dict[str, str], out_fd: int) -> int:
    """Double fork; return the generation's pid (re-parented to the master)."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(r)
            pid = os.fork()
            if pid == 0:
                os.close(w)
                _become_generation(sock, env, out_fd)  # never returns
            os.write(w, struct.pack("i", pid))
        finally:
            os._exit(0)
    os.close(w)
    os.close(out_fd)
    os.waitpid(middle, 0)
    data = os.read(r, 4)
    os.close(r)
    if len(data) != 4:
        raise OSError("the middle process died before reporting the generation's pid")
    return int(struct.unpack("i", data)[0])


def _become_generation(sock: socket.socket, env: dict[str, str], out_fd: int) -> None:
    code = 70
    try:
        sock.close()
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        os.environ.clear()
        os.environ.update(env)
        os.environ["LISTEN_PID"] = str(os.getpid())
        import random

        random.seed()  # the zygote's state would repeat in every generation otherwise
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        from swapprof.server._worker import main as worker_main

        code = worker_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _warm_up() -> None:
    """Pay first-use costs once, before forking: uvicorn's config loading (logging set-up,
    protocol class lookup) would otherwise run cold in every generation's ready phase."""
    with contextlib.suppress(Exception):
        import uvicorn

        async def app(scope: Any, receive: Any, send: Any) -> None:
            return None

        uvicorn.Config(app, lifespan="auto", log_level="warning", access_log=False).load()


def serve(sock: socket.socket, loaded: set[str]) -> int:
    import gc

    _warm_up()

    before = fingerprint(loaded)
    # Move everything preloaded out of the collector's reach: a forked generation's first
    # collections then do not walk (and copy-on-write fault in) the whole inherited heap.
    gc.collect()
    gc.freeze()
    problem = thread_problem()
    _send(sock, {"ready": problem is None, "error": problem, "kind": "threads" if problem else None,
                 "pid": os.getpid(), "modules": len(before)})  # fmt: skip
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 4)
        except InterruptedError:
            continue
        if not data:
            return 0  # the master closed its end
        request = json.loads(data)
        if request.get("cmd") == "ping":
            _send(sock, {"pong": True})
            continue
        out_fd = fds[0] if fds else os.open(os.devnull, os.O_WRONLY)
        problem = thread_problem()
        changed = changed_files(before)
        if problem is not None:
            os.close(out_fd)
            _send(sock, {"error": problem, "kind": "threads"})
        elif changed:
            os.close(out_fd)
            _send(
                sock,
                {"error": f"{len(changed)} preloaded file(s) changed, e.g. {changed[0]}", "kind": "stale"},
            )
        else:
            try:
                _send(sock, {"pid": _fork_generation(sock, request["env"], out_fd)})
            except OSError as exc:
                _send(sock, {"error": f"fork failed: {exc}", "kind": "fork"})


def main() -> int:
    sock = socket.socket(fileno=int(os.environ.pop("SWAPPROF_ZYGOTE_FD")))
    prefixes = [p for p in os.environ.get("SWAPPROF_PRELOAD", "").split(",") if p]
    import importlib

    already = set(sys.modules)
    for name in os.environ.pop("SWAPPROF_PRELOAD_BASE", "").split(","):
        if name:  # best effort: a missing optional part is imported later, when needed
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    failed = []
    for name in prefixes:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    if failed:
        _send(sock, {"ready": False, "error": "preload failed: " + "; ".join(failed), "kind": "preload"})
        return 1
    return serve(sock, set(sys.modules) - already)


if __name__ == "__main__":
    raise SystemExit(main())
