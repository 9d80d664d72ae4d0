"""What telemetry costs: one recorded phase (µs), and time_to_ready with telemetry on vs off.

    .venv/bin/python benchmarks/telemetry.py [--upgrades 12]

The two servers run side by side and are upgraded alternately, so machine noise hits both
alike; the ratio of their medians is the figure (aim: under 5 % added).
Prints a table and writes benchmarks/results/telemetry.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, precompile, summary, table, write


def phase_cost(n: int = 20000) -> dict[str, float]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from swapprof.telemetry import HandoffRecorder, JsonLinesSpanExporter

    with tempfile.TemporaryDirectory() as tmp:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(Path(tmp) / "spans.jsonl")))
        recorder = HandoffRecorder.start(tracer_provider=provider)
        t0 = time.perf_counter()
        for i in range(n):
            recorder.record_phase("spawn", i, i + 1000)
        explicit = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        for _ in range(n):
            with recorder.phase("import"):
                pass
        context = (time.perf_counter() - t0) / n * 1e6
        recorder.end()
        provider.shutdown()
    return {"record_phase_us": explicit, "phase_context_manager_us": context}


def ready_on_off(upgrades: int) -> dict[str, object]:
    from swapprof.testing import ServerProcess

    off_env = {**os.environ, "SWAPPROF_TELEMETRY": "0"}
    on_env = {k: v for k, v in os.environ.items() if k != "SWAPPROF_TELEMETRY"}
    results: dict[str, list[float]] = {"on": [], "off": []}
    with (
        ServerProcess(env=on_env, args=["--drain-grace", "0.1"]) as on,
        ServerProcess(env=off_env, args=["--drain-grace", "0.1"]) as off,
    ):
        for i in range(upgrades):
            for name, server in (("on", on), ("off", off)) if i % 2 == 0 else (("off", off), ("on", on)):
                record = server.upgrade()
                assert record["outcome"] == "success", record
                results[name].append(record["time_to_ready_ms"])
                time.sleep(0.5)  # upgrades are events, not a loop: let each settle as in production
            print(f"\r  upgrade pair {i + 1}/{upgrades}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    ratio = statistics.median(results["on"]) / statistics.median(results["off"])
    return {"on_ms": summary(results["on"]), "off_ms": summary(results["off"]), "ratio_on_off": ratio}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upgrades", type=int, default=12)
    args = parser.parse_args()
    if args.upgrades < 2:
        parser.error("--upgrades must be at least 2")
    pyc = precompile()
    cost = phase_cost()
    ready = ready_on_off(args.upgrades)
    on, off = ready["on_ms"], ready["off_ms"]  # type: ignore[index]
    print(table(["measure", "value"], [
        ["one recorded phase, explicit times (µs)", cost["record_phase_us"]],
        ["one recorded phase, context manager (µs)", cost["phase_context_manager_us"]],
        ["time_to_ready median, telemetry on (ms)", on["median"]],  # type: ignore[index]
        ["time_to_ready median, telemetry off (ms)", off["median"]],  # type: ignore[index]
        ["ratio on/off", f"{ready['ratio_on_off']:.3f}"],
    ]))  # fmt: skip
    path = write("telemetry", {"machine": machine(), "pyc": pyc, "phase_cost": cost, "time_to_ready": ready})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
