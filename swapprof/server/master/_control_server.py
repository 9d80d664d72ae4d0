"""The master's side of the control socket: one JSON request per connection, one answer.

Commands: ``ping``, ``status``, ``upgrade`` (``wait``), ``reload`` (``modules``, ``wait``,
``timeout``), ``stop``. Malformed requests get ``{"ok": false, "error": ...}``, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any, Protocol

from swapprof._errors import ControlError, ListenerError
from swapprof._vocabulary import TRIGGER_CTL
from swapprof.server._control import MAX_LINE, check_path_length, request
from swapprof.server._rundir import RunDir
from swapprof.server.master._cohort import Cohort
from swapprof.server.master._conncap import ConnectionCap
from swapprof.server.master._record import UpgradeRecord


class Controlled(Protocol):
    """What the control socket needs of the master."""

    run_dir: RunDir
    serving: Cohort | None

    @property
    def current(self) -> UpgradeRecord | None: ...
    def status(self) -> dict[str, Any]: ...
    def request_upgrade(self, trigger: str = ...) -> asyncio.Future[dict[str, Any]]: ...
    def stop(self) -> None: ...
    def say(self, text: str) -> None: ...


def claim_control_socket(run_dir: RunDir) -> None:
    """Make way for this master's control socket; raise ListenerError if a master answers there."""
    ctl = run_dir.control
    check_path_length(ctl)
    if ctl.exists():
        with contextlib.suppress(ControlError):
            request(run_dir.path, {"cmd": "ping"}, timeout=2.0)
            raise ListenerError(f"a swapprof master already runs in {run_dir.path}")
        ctl.unlink()


MAX_CONNECTIONS = 64
IDLE_TIMEOUT_S = 10.0
MAX_WAIT_S = 3600.0


async def _answer(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
    try:
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _timeout(request: dict[str, Any]) -> float | str:
    """``timeout`` of a request: a finite number of seconds in (0, MAX_WAIT_S], or an error text."""
    value = request.get("timeout", 120)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_WAIT_S:
        return f"bad request: timeout must be a number of seconds in (0, {MAX_WAIT_S:g}], not {value!r}"
    return float(value)


class ControlHandler:
    def __init__(self, master: Controlled) -> None:
        self.master = master
        self._serial = 0
        self.cap = ConnectionCap(MAX_CONNECTIONS)

    async def serve(self, run_dir: RunDir) -> asyncio.base_events.Server:
        """Listen on the run dir's control socket (mode 0600)."""
        server = await asyncio.start_unix_server(
            self, path=str(run_dir.control), limit=MAX_LINE, backlog=1024
        )
        os.chmod(run_dir.control, 0o600)
        return server

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.cap.admit(writer):  # every slot busy answering (idle ones make way)
            await _answer(writer, {"ok": False, "error": f"busy: {MAX_CONNECTIONS} control requests running"})
            return
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
            except TimeoutError:
                answer: dict[str, Any] = {
                    "ok": False,
                    "error": f"bad request: no line within {IDLE_TIMEOUT_S:g} s",
                }
            else:
                self.cap.working(writer)
                answer = await self.dispatch(line)
        except (ValueError, RecursionError, asyncio.LimitOverrunError) as exc:
            answer = {"ok": False, "error": f"bad request: {type(exc).__name__}: {str(exc)[:200]}"}
        except ConnectionError:  # closed to make way for a newer connection, or by the client
            answer = {"ok": False, "error": "connection closed"}
        try:
            await _answer(writer, answer)
        finally:
            self.cap.release(writer)

    async def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "bad request: not a JSON line"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "bad request: expected a JSON object"}
        cmd = request.get("cmd")
        if cmd == "ping":
            return {"ok": True}
        if cmd == "status":
            return {"ok": True, **self.master.status()}
        if cmd == "upgrade":
            fut = self.master.request_upgrade(TRIGGER_CTL)
            if request.get("wait"):
                return {"ok": True, "upgrade": await asyncio.shield(fut)}
            return {"ok": True, "accepted": True}
        if cmd == "reload":
            return await self.reload(request)
        if cmd == "stop":
            asyncio.get_running_loop().call_soon(self.master.stop)
            return {"ok": True, "stopping": True}
        return {"ok": False, "error": f"unknown command {cmd!r}; expected status, upgrade, reload or stop"}

    async def reload(self, request: dict[str, Any]) -> dict[str, Any]:
        """Reload modules in place inside the serving generation (tracked there)."""
        modules = request.get("modules") or []
        if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
            return {"ok": False, "error": "bad request: modules must be a list of module names"}
        timeout = _timeout(request)  # checked before anything is signalled
        if isinstance(timeout, str):
            return {"ok": False, "error": timeout}
        cohort = self.master.serving
        workers = [w for w in cohort or () if w.alive]
        if cohort is None or not workers:
            return {"ok": False, "error": "no generation is serving"}
        if self.master.current is not None:
            return {
                "ok": False,
                "error": f"upgrade {self.master.current.id} is in progress; reload after it",
            }
        self._serial += 1
        reload_id = self._serial
        run_dir = self.master.run_dir
        try:
            for gen in workers:
                path = run_dir.reload_request(gen.number, gen.worker)
                run_dir.write_json(path, {"id": reload_id, "modules": modules})
        except OSError as exc:
            return {"ok": False, "error": f"cannot write the reload request: {exc}"}
        for gen in workers:
            gen.signal(signal.SIGUSR1)
        if not request.get("wait"):
            return {"ok": True, "accepted": True, "id": reload_id, "generation": cohort.number}
        deadline = time.monotonic_ns() + int(timeout * 1e9)
        await cohort.wait_until(lambda: all(reload_id in g.reloads or not g.alive for g in workers), deadline)
        results = []
        for gen in workers:
            if reload_id not in gen.reloads:
                why = "did not report it in time" if gen.alive else f"{gen.describe_exit()} during it"
                return {
                    "ok": False,
                    "error": f"generation {gen.number} worker {gen.worker} {why} (reload {reload_id})",
                }
            results.append(gen.reloads.pop(reload_id))
        # one answer: worker 0's result, failed if any worker's failed, every worker's in "workers"
        result = next((r for r in results if r.get("outcome") != "ok"), results[0])
        if len(results) > 1:
            result = {**result, "workers": results}
        self.master.say(
            f"reload {reload_id} in generation {cohort.number}: {result.get('outcome')} {result.get('modules')}"
        )
        return {"ok": True, "reload": result}
