"""Reload each plugin a few times under a ReloadTracker and print the verdict.

Run from the repository root: ``.venv/bin/python examples/reload_leak/run.py``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from swapprof import ReloadTracker

RELOADS = 8


def track(module_name: str) -> dict[str, object]:
    module = importlib.import_module(module_name)
    with ReloadTracker([module]) as tracker:
        for _ in range(RELOADS):
            record = tracker.reload()
        summary = tracker.summary()
    stale = record.stale[0].referrers if record.stale else ()
    return {
        "module": module_name,
        "verdict": summary.verdict,
        "leaking": summary.leaking,
        "bytes_per_reload": round(summary.bytes_per_reload),
        "interval_95": [round(summary.low), round(summary.high)],
        "stale_versions": summary.stale_versions,
        "oldest_stale_referrer": stale[0] if stale else None,
    }


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for name in ("leaky_plugin", "fixed_plugin"):
        print(json.dumps(track(name)))


if __name__ == "__main__":
    main()
