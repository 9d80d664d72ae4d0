"""The record of one upgrade: phases on CLOCK_MONOTONIC, outcome, reason, derived figures.

Phase, outcome and reason names are the shared vocabulary (``swapprof._vocabulary``).

With N workers a generation's phases are recorded twice: once per worker (``worker_spans``:
what each process took, its spans in the trace) and once for the generation, on its critical
path (``spans``): each phase ends when the LAST worker reached its end and begins where the
previous one ended, so the phases stay contiguous and add up to time_to_ready / upgrade_total.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from swapprof._vocabulary import OLD_GENERATION_PHASES, SUCCESS, check_phase


@dataclass
class UpgradeRecord:
    id: int
    trigger: str
    requested_ns: int = field(default_factory=time.monotonic_ns)
    requested_wall: float = field(default_factory=time.time)
    old_generation: int | None = None
    new_generation: int | None = None
    old_pid: int | None = None
    new_pid: int | None = None
    outcome: str | None = None
    reason: str | None = None
    detail: str = ""
    coalesced: int = 0
    spans: list[tuple[str, int, int]] = field(default_factory=list)
    worker_spans: list[tuple[str, int, int, int]] = field(default_factory=list)
    """(phase, worker index, start, end) of each worker's own import/ready or switch/drain/exit."""
    marks: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)
    done: asyncio.Future[dict[str, Any]] | None = None

    def phase(self, name: str, start_ns: int, end_ns: int) -> None:
        check_phase(name)
        self.spans.append((name, start_ns, max(start_ns, end_ns)))

    def worker_phase(self, name: str, worker: int, start_ns: int, end_ns: int) -> None:
        check_phase(name)
        self.worker_spans.append((name, worker, start_ns, max(start_ns, end_ns)))

    def mark(self, name: str, at_ns: int | None = None) -> int:
        value = time.monotonic_ns() if at_ns is None else at_ns
        self.marks[name] = value
        return value

    def _since_request_ms(self, mark: str) -> float | None:
        value = self.marks.get(mark)
        return None if value is None else round((value - self.requested_ns) / 1e6, 3)

    def to_dict(self) -> dict[str, Any]:
        phases_ms: dict[str, float] = {}
        for name, start, end in self.spans:
            phases_ms[name] = round(phases_ms.get(name, 0.0) + (end - start) / 1e6, 3)
        by_worker: dict[str, dict[str, dict[str, float]]] = {}
        for name, worker, start, end in self.worker_spans:
            side = "old" if name in OLD_GENERATION_PHASES else "new"
            by_worker.setdefault(side, {}).setdefault(str(worker), {})[name] = round((end - start) / 1e6, 3)
        drain = phases_ms.get("drain")
        ready = self.marks.get("new_ready")
        stopped = self.marks.get("old_stopped_accepting")
        gap = None
        if ready is not None and stopped is not None:
            gap = round(max(0, ready - stopped) / 1e6, 3)
        return {
            "id": self.id,
            "trigger": self.trigger,
            "requested_at": self.requested_wall,
            "old_generation": self.old_generation,
            "new_generation": self.new_generation,
            "old_pid": self.old_pid,
            "new_pid": self.new_pid,
            "outcome": self.outcome,
            "reason": self.reason,
            "detail": self.detail,
            "coalesced": self.coalesced,
            "phases_ms": phases_ms,
            "worker_phases_ms": by_worker,
            "spans": [{"phase": n, "start_ns": s, "end_ns": e} for n, s, e in self.spans],
            "requested_ns": self.requested_ns,
            "time_to_ready_ms": self._since_request_ms("new_ready"),
            "time_to_switch_ms": self._since_request_ms("old_stopped_accepting"),
            "drain_time_ms": drain,
            "upgrade_total_ms": self._since_request_ms("ended"),
            "service_gap_ms": gap,
            **self.info,
            "tail": self.tail,
        }


def summary_line(record: dict[str, Any]) -> str:
    """One line for the master's log: outcome, generations and phase durations."""
    phases = " ".join(f"{name}={ms:.1f}ms" for name, ms in record["phases_ms"].items())
    head = f"upgrade {record['id']} ({record['trigger']}): {record['outcome']}"
    if record["outcome"] != SUCCESS:
        head += f" [{record['reason']}: {record['detail']}]"
    gens = f"gen {record['old_generation']} -> {record['new_generation']}"
    return f"{head}, {gens}, {phases}"
