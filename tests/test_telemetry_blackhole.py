"""A collector that accepts connections and never answers costs each exiting process at most its
flush bound (SWAPPROF_FLUSH_TIMEOUT), never a forced kill (issue 17, item 3)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from swapprof.testing import ServerProcess
from tests._helpers import http_get, wait_for

FLUSH_TIMEOUT_S = 2.0  # the default: each exiting process's whole flush budget


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An OTLP endpoint that accepts every connection and then says nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for sock in held:
            sock.close()
        listener.close()


def test_a_silent_collector_causes_no_forced_kill(black_hole: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("SWAPPROF_FLUSH_TIMEOUT", None)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = black_hole
    with ServerProcess(env=env, args=["--drain-grace", "0.1"]) as server:
        for _ in range(2):
            record = server.upgrade()
            assert record["outcome"] == "success", record
            assert not record.get("forced_kill"), record
            # the old generation's exit: its flush bound, not the 5 s kill grace
            assert record["phases_ms"]["exit"] < 1000 * (FLUSH_TIMEOUT_S + 2.5), record["phases_ms"]
        status = server.status()
        assert status["forced_kills"] == 0

        # what the workers could not export in their budget, the master recorded and counted
        def counted() -> bool:
            body = http_get(f"http://{status['debug_address']}/metrics")[2]
            line = next(
                ln for ln in body.splitlines() if ln.startswith(b"swapprof_telemetry_unexported_spans_total")
            )
            return float(line.split()[-1]) > 0

        wait_for(counted, 30, "unexported worker spans counted")
