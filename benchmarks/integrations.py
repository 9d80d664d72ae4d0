"""The servers under swapprof.integrations: 5 SIGHUPs under load each, their records and the client's view (docs/benchmarks.md#integrations).

PYTHONPATH=. python benchmarks/integrations.py
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from swapprof.gate._load import LoadGenerator, error_counts
from tests import _integrations as it


def run(kind, n=5):
    tmp = Path(tempfile.mkdtemp())
    if kind == "gunicorn":
        (tmp / "wsgiapp.py").write_text(it.WSGI_APP)
        argv = [
            str(it.BIN / "gunicorn"),
            "-c",
            "python:swapprof.integrations.gunicorn",
            "-w",
            "2",
            "-b",
            "127.0.0.1:{port}",
            "--no-control-socket",
            "wsgiapp:app",
        ]
        env = {}
    else:
        (tmp / "asgiapp.py").write_text(it.ASGI_APP)
        argv = [
            sys.executable,
            "-m",
            "swapprof",
            "observe",
            "--",
            str(it.BIN / "uvicorn"),
            "swapprof.integrations.asgi:app",
            "--workers",
            "2",
            "--port",
            "{port}",
            "--no-access-log",
        ]
        env = {"SWAPPROF_APP": "asgiapp:app"}
    with it.Server(argv, tmp, env) as s:
        it.wait_for("state", lambda: s.state().get("master_pid"))
        time.sleep(1)
        load = LoadGenerator(f"127.0.0.1:{s.port}", concurrency=4, rate=200).start()
        spans = []
        for i in range(n):
            time.sleep(1.0)
            t0 = time.monotonic_ns()
            s.proc.send_signal(signal.SIGHUP)
            s.wait_records(i + 1)
            spans.append((t0, time.monotonic_ns()))
        time.sleep(1)
        res = load.stop()
        recs = s.records()
        during = [r for r in res if any(a <= r.start_ns <= b for a, b in spans)]
        steady = [r for r in res if not any(a <= r.start_ns <= b for a, b in spans)]

        def p99(rs):
            lat = sorted((r.end_ns - r.start_ns) / 1e6 for r in rs if not r.error)
            return round(lat[int(len(lat) * 0.99)], 1) if lat else None

        print(
            kind,
            "gaps",
            [r["service_gap_ms"] for r in recs],
            "ttr",
            [r["time_to_ready_ms"] for r in recs],
            "errors",
            error_counts(res),
            "requests",
            len(res),
            "p99 during",
            p99(during),
            "steady",
            p99(steady),
            flush=True,
        )


run("gunicorn")
run("uvicorn")
