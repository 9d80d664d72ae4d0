"""Shared bits of the benchmark scripts: machine facts, percentiles, a table printer."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from swapprof.gate._machine import machine as gate_machine

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    """The gate's machine facts for the packages the benchmarks compare, and how .pyc files are
    handled (PYTHONDONTWRITEBYTECODE changes every interpreter start)."""
    facts = gate_machine(
        ("swapprof", "uvicorn", "gunicorn", "httptools", "opentelemetry-sdk", "prometheus_client")
    )
    facts["PYTHONDONTWRITEBYTECODE"] = os.environ.get("PYTHONDONTWRITEBYTECODE")
    return facts


def precompile() -> str:
    """Compile swapprof's modules to .pyc so every interpreter start reads them as a deployed
    service would (PYTHONDONTWRITEBYTECODE=1 only stops writing, not reading)."""
    import swapprof

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(swapprof.__file__).parent)], check=True
    )
    return "precompiled with compileall before the run (PYTHONDONTWRITEBYTECODE stops writing only)"


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "median": statistics.median(values) if values else None,
        "p95": pct(values, 95),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [
        ["-" if c is None else (f"{c:.1f}" if isinstance(c, float) else str(c)) for c in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


@contextlib.contextmanager
def logs_on_failure(logs: Path) -> Iterator[None]:
    """On any failure inside, print the tail of every server log in ``logs``, then re-raise."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            for log in sorted(logs.iterdir()):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
        raise
