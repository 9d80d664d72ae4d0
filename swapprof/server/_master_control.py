"""The master's side of the control socket: one JSON request per connection, one answer.

Commands: ``ping``, ``status``, ``upgrade`` (``wait``), ``reload`` (``modules``, ``wait``,
``timeout``), ``stop``. Malformed requests get ``{"ok": false, "error": ...}``, never a crash.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any


class ControlHandler:
    def __init__(self, master: Any) -> None:
        self.master = master
        self._serial = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            answer = await self.dispatch(line)
        except (ValueError, asyncio.LimitOverrunError) as exc:
            answer = {"ok": False, "error": f"bad request: {exc}"}
        try:
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

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
            fut = self.master.request_upgrade("ctl")
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
        gen = self.master.serving
        if gen is None or not gen.alive:
            return {"ok": False, "error": "no generation is serving"}
        if self.master._current is not None:
            return {
                "ok": False,
                "error": f"upgrade {self.master._current.id} is in progress; reload after it",
            }
        self._serial += 1
        reload_id = self._serial
        path = self.master.run_dir / "handoff" / f"reload-{gen.number}.json"
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"id": reload_id, "modules": modules}))
        tmp.replace(path)
        gen.signal(signal.SIGUSR1)
        if not request.get("wait"):
            return {"ok": True, "accepted": True, "id": reload_id, "generation": gen.number}
        deadline = time.monotonic_ns() + int(float(request.get("timeout", 120)) * 1e9)
        if not await gen.wait_until(lambda: reload_id in gen.reloads or not gen.alive, deadline):
            return {
                "ok": False,
                "error": f"generation {gen.number} did not report reload {reload_id} in time",
            }
        if reload_id not in gen.reloads:
            return {"ok": False, "error": f"generation {gen.number} {gen.describe_exit()} during the reload"}
        result = gen.reloads.pop(reload_id)
        self.master._say(
            f"reload {reload_id} in generation {gen.number}: {result.get('outcome')} {result.get('modules')}"
        )
        return {"ok": True, "reload": result}
