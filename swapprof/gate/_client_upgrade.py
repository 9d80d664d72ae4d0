"""One upgrade of a ``--cmd`` server, seen from the client side.

t0: the upgrade command starts. ``time_to_ready``: t0 -> the generation probe's first answer
from a new generation. ``upgrade_total``: t0 -> the upgrade command exited (or the first new
answer, if that came later). Phases: ``ready`` (t0 -> first new answer) and ``exit`` (-> end).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swapprof.gate._probe import Probe


@dataclass(frozen=True)
class ClientUpgrade:
    t0_ns: int
    ready_ns: int | None  # None: no new generation answered in time
    done_ns: int
    exit_code: int
    identity: str | None  # the new generation's identity

    def entry(self, old_generation: int, old_pid: int, detail: str = "") -> dict[str, Any]:
        """The bench's upgrade entry (``source: "client"``)."""
        base: dict[str, Any] = {"source": "client", "old_generation": old_generation, "old_pid": old_pid}
        if self.ready_ns is None or self.exit_code != 0:
            reason = "ready_timeout" if self.ready_ns is None else f"upgrade_cmd_exit_{self.exit_code}"
            return {**base, "outcome": "failed", "reason": reason, "phases_ms": {}, "detail": detail}
        ready = round((self.ready_ns - self.t0_ns) / 1e6, 3)
        total = round((self.done_ns - self.t0_ns) / 1e6, 3)
        return {
            **base,
            "outcome": "success",
            "reason": "ok",
            "new_generation": old_generation + 1,
            "phases_ms": {"ready": ready, "exit": round(total - ready, 3)},
            "spans_ms": [["ready", 0.0, ready], ["exit", ready, total]],
            "time_to_ready_ms": ready,
            "upgrade_total_ms": total,
        }


def run(
    probe: Probe, argv: Sequence[str], old_identity: str, timeout: float, env: Mapping[str, str], log: Path
) -> ClientUpgrade:
    """Start the upgrade command, watch the probe until a new generation answers, wait for the
    command (killed at ``timeout``)."""
    t0 = time.monotonic_ns()
    with open(log, "ab") as out:
        upgrader = subprocess.Popen(list(argv), stdout=out, stderr=out, env=dict(env))
    until = time.monotonic() + timeout
    found = probe.wait(until, old_identity, give_up=lambda: upgrader.poll() not in (None, 0))
    try:
        code = upgrader.wait(max(0.1, until - time.monotonic()))
    except subprocess.TimeoutExpired:
        upgrader.kill()
        code = upgrader.wait()
    ready_ns = found[1] if found else None
    done = max(time.monotonic_ns(), ready_ns or 0)
    return ClientUpgrade(t0, ready_ns, done, code, found[0] if found else None)
