"""What a bench measures: a target it can start, upgrade, inspect and stop.

``ReferenceTarget`` runs ``swapprof serve`` and takes each upgrade's phases from the master's
own record (``source: "server"``). ``CommandTarget`` (``_command.py``) runs any server and
measures from the client side (``source: "client"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from swapprof.gate._machine import fds_and_rss

DEMO_APP = "swapprof.server.demo:app"
RECORD_FIELDS = (
    "outcome",
    "reason",
    "detail",
    "old_generation",
    "new_generation",
    "old_pid",
    "new_pid",
    "phases_ms",
    "time_to_ready_ms",
    "time_to_switch_ms",
    "drain_time_ms",
    "upgrade_total_ms",
    "service_gap_ms",
)


class Target(Protocol):
    @property
    def address(self) -> str: ...

    def describe(self) -> dict[str, Any]: ...

    def start(self) -> None: ...

    def upgrade(self) -> dict[str, Any]: ...

    def generation(self) -> dict[str, Any]: ...

    def stop(self) -> None: ...


def from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A bench upgrade entry from the master's upgrade record (phases relative to requested)."""
    entry: dict[str, Any] = {"source": "server", **{k: record.get(k) for k in RECORD_FIELDS}}
    entry["phases_ms"] = dict(record.get("phases_ms") or {})
    entry["spans_ms"] = spans_ms(record)
    return entry


def spans_ms(record: Mapping[str, Any]) -> list[list[Any]]:
    """A record's phase spans as ``[phase, start_ms, end_ms]``, relative to its ``requested``."""
    base = record.get("requested_ns")
    return [
        [s["phase"], round((s["start_ns"] - base) / 1e6, 3), round((s["end_ns"] - base) / 1e6, 3)]
        for s in record.get("spans") or []
        if isinstance(base, int)
    ]


class ReferenceTarget:
    """``swapprof serve APP`` on a free loopback port, upgraded through its control socket."""

    def __init__(
        self,
        app: str = DEMO_APP,
        *,
        app_dir: str | None = None,
        serve_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        upgrade_timeout: float = 120.0,
    ) -> None:
        from swapprof.testing import ServerProcess

        self.app, self.app_dir = app, app_dir
        args = [*(["--app-dir", app_dir] if app_dir else []), *serve_args]
        self.server = ServerProcess(app, args=args, env={**os.environ, **(env or {})})
        self.upgrade_timeout = upgrade_timeout

    @property
    def address(self) -> str:
        return self.server.address

    def describe(self) -> dict[str, Any]:
        return {"kind": "reference", "app": self.app, "app_dir": self.app_dir, "argv": self.server.argv[1:]}

    def start(self) -> None:
        self.server.start()

    def upgrade(self) -> dict[str, Any]:
        return from_record(self.server.upgrade(timeout=self.upgrade_timeout))

    def generation(self) -> dict[str, Any]:
        status = self.server.status()
        serving = status.get("serving_generation")
        pids = [g["pid"] for g in status.get("generations", []) if g.get("generation") == serving]
        return {"generation": serving, **fds_and_rss(pids)}

    def stop(self) -> None:
        self.server.__exit__(None, None, None)
