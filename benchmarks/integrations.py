"""The servers under swapprof.integrations: 5 SIGHUPs under load each, their records and the client's view (docs/benchmarks.md#integrations).

PYTHONPATH=. python benchmarks/integrations.py [gunicorn|uvicorn|granian|granian-slow ...]

granian runs with its default --respawn-interval (3.5 s); granian-slow with an app whose import
takes 1.5 s and --respawn-interval 0.1, so both old workers are stopped before a new one serves.
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
from tests._helpers import wait_for

OBSERVE = [sys.executable, "-m", "swapprof", "observe", "--"]


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
    elif kind == "uvicorn":
        (tmp / "asgiapp.py").write_text(it.ASGI_APP)
        argv = [*OBSERVE, str(it.BIN / "uvicorn"), "swapprof.integrations.asgi:app"]
        argv += ["--workers", "2", "--port", "{port}", "--no-access-log"]
        env = {"SWAPPROF_APP": "asgiapp:app"}
    else:
        slow = "import time\ntime.sleep(1.5)\n" if kind == "granian-slow" else ""
        (tmp / "asgiapp.py").write_text(slow + it.ASGI_APP)
        argv = [*OBSERVE, str(it.BIN / "granian"), "--interface", "asgi", "--workers", "2"]
        argv += ["--port", "{port}"]
        argv += ["--respawn-interval", "0.1"] if slow else []
        argv += ["swapprof.integrations.asgi:app"]
        env = {"SWAPPROF_APP": "asgiapp:app"}
    with it.Server(argv, tmp, env) as s:
        wait_for(lambda: s.state().get("master_pid"), 60, "state")
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


for name in sys.argv[1:] or ["gunicorn", "uvicorn", "granian", "granian-slow"]:
    run(name)
