"""``swapprof demo`` (``make demo``): start the reference server, drive load, upgrade it live."""

from __future__ import annotations

import sys
import time
from typing import Any

from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.server._process import ServerProcess

PHASE_ORDER = ("requested", "spawn", "import", "ready", "switch", "drain", "exit", "rollback")


def _line(record: dict[str, Any]) -> str:
    phases = record["phases_ms"]
    cells = " ".join(f"{name} {phases[name]:6.1f}" for name in PHASE_ORDER if name in phases)
    return (
        f"  upgrade {record['id']}: gen {record['old_generation']} -> {record['new_generation']}  "
        f"{record['outcome']:<8} ready in {record['time_to_ready_ms'] or 0:6.1f} ms  [{cells}] ms"
    )


def _waterfall(run_dir: Any, count: int) -> str:
    """The last ``count`` upgrades as waterfalls, once their spans have reached the span file."""
    from swapprof.telemetry._report import load_upgrades, render_text

    deadline = time.monotonic() + 10
    upgrades = []
    while time.monotonic() < deadline:
        try:
            upgrades = load_upgrades(run_dir)
        except Exception:
            upgrades = []
        if len(upgrades) >= count and all(len(u.phases) >= 7 for u in upgrades[-count:]):
            break
        time.sleep(0.1)
    text = render_text(upgrades[-count:], width=32)
    return "\n".join(f"  {line}" if line else "" for line in text.splitlines())


def run_demo(upgrades: int = 3, run_dir: str | None = None, out: Any = None) -> int:
    out = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say("swapprof demo: starting the reference server (swapprof.server.demo:app) on a free port")
    with ServerProcess(run_dir=run_dir) as server:
        say(f"  master pid {server.pid} listening on {server.url}, run dir {server.run_dir}")
        loads = [
            LoadGenerator(
                server.address, concurrency=4, mode="keepalive", paths=[("/", 9), ("/slow?ms=150", 1)]
            ),
            LoadGenerator(server.address, concurrency=2, mode="new", paths=[("/", 1)]),
        ]
        for load in loads:
            load.start()
        time.sleep(1.0)  # let the load reach steady state before the first upgrade
        say(f"  load running (4 keep-alive + 2 new-connection clients); performing {upgrades} hot upgrades")
        records = []
        for _ in range(upgrades):
            record = server.upgrade()
            records.append(record)
            say(_line(record))
            time.sleep(0.5)
        results = [r for load in loads for r in load.stop()]
        errors = error_counts(results)
        failed = sum(errors.values())
        generations = sorted({r.generation for r in results if r.generation is not None})
        retried = sum(r.retried for r in results)
        say(f"  requests: {len(results)}, failed: {failed} {errors if failed else ''}".rstrip())
        if retried:
            say(
                f"  re-sent once on a new connection after the server closed an idle keep-alive one: {retried}"
            )
        status = server.status()
        same = status["master_pid"] == server.pid
        say(f"  generations that answered: {generations}; master pid unchanged: {same}")
        say(f"  metrics: http://{status['debug_address']}/metrics   traces: {server.run_dir / 'spans.jsonl'}")
        say(_waterfall(server.run_dir, len(records)))
    ok = failed == 0 and all(r["outcome"] == "success" for r in records)
    say("swapprof demo: " + ("all upgrades succeeded with zero failed requests" if ok else "FAILED"))
    return 0 if ok else 1
