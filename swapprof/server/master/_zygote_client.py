"""The master's side of the zygote: start it, ask it to fork generations, replace it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from swapprof._errors import SwapprofError
from swapprof.server._contract import (
    DEFAULT_HTTP,
    DEFAULT_LOOP,
    ENV_HTTP,
    ENV_LIFELINE_FD,
    ENV_LISTEN_FDNAMES,
    ENV_LISTEN_FDS,
    ENV_LOOP,
    ENV_PRELOAD,
    ENV_PRELOAD_BASE,
    ENV_PRELOAD_LEARNED,
    ENV_ZYGOTE_FD,
)
from swapprof.server._stack import preload_modules
from swapprof.server.master._child import Generation
from swapprof.server.master._spare import Spare, SpareGone

# Always preloaded (best effort): swapprof's own generation stack and what it imports at
# startup and right after READY -- never app code. The loop and parser the settings choose are
# added by ``_stack.preload_modules``. An app zygote (``_exec_forks``) imports only the first part,
# what a generation imports before READY: the rest would be on the upgrade's critical path.
BEFORE_READY = (
    "swapprof.server.generation._main",
    "swapprof.server.generation._app",
    "swapprof.server.generation._serving",
    "swapprof.server.generation._telemetry",
    "swapprof.server.generation._reload",
    "swapprof.server.generation._probe",
    "swapprof.server.generation._parking",
    "swapprof.server.generation._private",
    "swapprof.server._contract",
    "swapprof.server._rundir",
    "swapprof.server._fds",
    "uvicorn.lifespan.on",
)
BASE_PRELOAD = (
    *BEFORE_READY,
    "swapprof.telemetry._setup",
    "swapprof.telemetry._handoff",
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.trace.export",
    "swapprof.telemetry._jsonl",
    "swapprof.gc._monitor",  # the generation's GC monitor, installed after READY
    "opentelemetry.sdk.metrics",
    "opentelemetry.exporter.prometheus",
    "prometheus_client",
)
START_TIMEOUT_S = 60.0
FORK_TIMEOUT_S = 10.0


class ZygoteError(SwapprofError):
    """The zygote refused or failed; ``kind`` is threads, stale, fork, preload, unsafe (learned
    modules it could not preload safely: ``dropped`` names them) or dead."""

    def __init__(self, message: str, kind: str, dropped: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.dropped = dropped or {}


class Zygote:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        log: IO[bytes] | None,
        serial: int,
        label: str = "zygote",
        generation: int = 0,
    ) -> None:
        """``generation``: the one an app zygote imports the app for (its SWAPPROF_GENERATION)."""
        self.loop = loop
        self.serial = serial
        self.process = Generation(generation, loop, log, label=f"{label} {serial}")
        self.sock: socket.socket | None = None
        self.ready = False
        self.error: str | None = None
        self.inotify = False
        self.hello: dict[str, Any] = {}  # what it said when ready: modules, learned, dropped
        self._lock = asyncio.Lock()  # one request at a time
        self._serial = 0

    async def start(
        self,
        python: str,
        env: Mapping[str, str],
        listeners: Sequence[socket.socket],
        names: Sequence[str],
        preload: Sequence[str],
        lifeline: int,
        learned: str | None = None,
        timeout: float = START_TIMEOUT_S,
        base: Sequence[str] = BASE_PRELOAD,
    ) -> None:
        """Spawn and wait until the zygote has imported ``preload`` (and the modules listed in
        the file ``learned``, one at a time, checked); raise ZygoteError if not."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        first_extra = 3 + len(listeners)
        child_env = dict(env)
        child_env[ENV_ZYGOTE_FD] = str(first_extra)
        child_env[ENV_LIFELINE_FD] = str(first_extra + 1)
        child_env[ENV_PRELOAD] = ",".join(preload)
        stack = preload_modules(env.get(ENV_LOOP) or DEFAULT_LOOP, env.get(ENV_HTTP) or DEFAULT_HTTP)
        child_env[ENV_PRELOAD_BASE] = ",".join((*base, *stack))
        if learned:
            child_env[ENV_PRELOAD_LEARNED] = learned
        try:
            self.process.start(
                [python, "-m", "swapprof.server.zygote"], child_env, listeners, names,
                extra_fds=[theirs.fileno(), lifeline],
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        try:
            hello = await self._receive(timeout)
        except BaseException:  # also cancelled (the master stops while it preloads)
            self.close()
            self.process.kill()
            raise
        if not hello.get("ready"):
            self.close()
            dropped = hello.get("dropped") if isinstance(hello.get("dropped"), dict) else None
            raise ZygoteError(str(hello.get("error")), str(hello.get("kind") or "preload"), dropped)
        self.ready = True
        self.hello = hello
        self.inotify = bool(hello.get("inotify"))

    async def _receive(self, timeout: float) -> dict[str, Any]:
        assert self.sock is not None
        try:
            data = await asyncio.wait_for(self.loop.sock_recv(self.sock, 1 << 20), timeout)
        except (TimeoutError, OSError) as exc:
            raise ZygoteError(f"no answer from the zygote: {exc!r}", "dead") from None
        if not data:
            raise ZygoteError(f"the zygote {self.process.describe_exit()}", "dead")
        answer: dict[str, Any] = json.loads(data)
        return answer

    async def _call(self, payload: dict[str, Any], fds: Sequence[int] = ()) -> dict[str, Any]:
        """Send one request (passing ``fds``) and return the answer; raise ZygoteError when it
        is a refusal (``kind``: threads, stale, fork) or the zygote does not answer (dead).

        Every request carries an id the answer echoes. An answer to an earlier request (that
        timed out, or whose caller was cancelled) is not taken for this one; if it names a
        process forked for nobody, that process is killed (the master reaps strays)."""
        async with self._lock:
            if self.sock is None or not self.ready or not self.process.alive:
                raise ZygoteError("the zygote is not running", "dead")
            self._serial += 1
            request_id = self._serial
            try:
                socket.send_fds(self.sock, [json.dumps({**payload, "id": request_id}).encode()], list(fds))
            except OSError as exc:
                raise ZygoteError(f"cannot reach the zygote: {exc}", "dead") from None
            deadline = self.loop.time() + FORK_TIMEOUT_S
            while True:
                answer = await self._receive(max(0.0, deadline - self.loop.time()))
                if answer.get("id") == request_id:
                    break
                if isinstance(answer.get("pid"), int):
                    with contextlib.suppress(OSError):
                        os.kill(answer["pid"], signal.SIGKILL)
        if "error" in answer:
            raise ZygoteError(str(answer.get("error")), str(answer.get("kind") or "fork"))
        if payload.get("cmd") in ("fork", "spare") and not isinstance(answer.get("pid"), int):
            raise ZygoteError(f"malformed answer {answer!r}", "protocol")
        return answer

    async def fork(self, env: Mapping[str, str], out_w: int) -> int:
        """Fork a generation with ``env``, its stdout/stderr on ``out_w``; return its pid."""
        return int((await self._call({"cmd": "fork", "env": dict(env)}, [out_w]))["pid"])

    async def check(self) -> None:
        """Raise ZygoteError if a fork now would be refused (threads, stale files, dead)."""
        await self._call({"cmd": "check"})

    async def spare(self, on_exit: Callable[[Spare, bool], None] | None = None) -> Spare:
        """Fork a spare: a generation that warms up, then waits for its environment."""
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = int((await self._call({"cmd": "spare"}, [out_w, theirs.fileno()]))["pid"])
        except BaseException:
            os.close(out_r)
            ours.close()
            raise
        finally:
            os.close(out_w)
            theirs.close()
        try:
            return Spare(self.loop, pid, ours, out_r, self.process.log, on_exit)
        except OSError:
            os.close(out_r)
            ours.close()  # the spare exits on this EOF; the master reaps it as a stray
            raise

    def close(self) -> None:
        """Stop the zygote: closing our end makes it exit; SIGKILL if it lingers."""
        self.ready = False
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def retire(self) -> None:
        """Stop once the request in flight (a fork for an upgrade running now) is answered."""
        async with self._lock:
            self.close()
        await self.stop()

    async def stop(self, timeout: float = 5.0) -> None:
        self.close()
        if self.process.alive:
            deadline = time.monotonic_ns() + int(timeout * 1e9)
            if not await self.process.wait_until(lambda: not self.process.alive, deadline):
                self.process.kill()
                await self.process.wait_until(lambda: not self.process.alive, deadline + int(5e9))


def fork_env(
    env: Mapping[str, str], listeners: Sequence[socket.socket], names: Sequence[str]
) -> dict[str, str]:
    """``env`` for a generation a zygote forks: the listeners and the lifeline where a zygote
    holds them (``Zygote.start``: listeners at fds 3.., its socket, then the lifeline)."""
    return {
        **env,
        ENV_LISTEN_FDS: str(len(listeners)),
        ENV_LISTEN_FDNAMES: ":".join(names),
        ENV_LIFELINE_FD: str(3 + len(listeners) + 1),
    }


async def start_generation_forked(
    gen: Generation, zygote: Zygote, env: Mapping[str, str], spare: Spare | None = None, check: bool = True
) -> bool:
    """Bring ``gen`` up from ``spare`` if it is still waiting, else as a fresh fork of the
    zygote (the counterpart of ``Generation.start``); True if from the spare. A stale zygote
    raises ZygoteError. ``check`` False: the caller checked the zygote a moment ago (for an
    earlier worker of the same upgrade), so a spare is activated without a round trip."""
    child_env = gen.prepare(env)
    if spare is not None and spare.waiting:
        try:
            if check:
                await zygote.check()  # the spare holds the zygote's code: is that still current?
            pid, pidfd, output = spare.activate(child_env)
        except SpareGone:
            spare.discard()  # died while waiting: fork afresh below
        except BaseException:
            gen.abandon()
            raise  # the caller decides what becomes of the spare
        else:
            gen.adopt(pid, output, pidfd)
            return True
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = await zygote.fork(child_env, out_w)
    except BaseException:
        os.close(out_r)
        gen.abandon()
        raise
    finally:
        os.close(out_w)
    with contextlib.suppress(OSError):
        os.set_blocking(out_r, False)
    try:
        gen.adopt(pid, out_r)
    except OSError:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)  # our child, not reaped yet: the pid is still its own
        os.close(out_r)
        gen.abandon()
        raise
    return False
