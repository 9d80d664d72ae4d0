"""/debug/pprof on the master's debug port with --workers N: ``worker=I`` proxies to that worker,
``worker=all`` merges, no ``worker`` with several is a 400 that lists them; the token applies;
a long profile does not hold up other requests. Real processes, real sockets, real Go pprof."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

from swapprof.pprof import read_profile
from swapprof.testing import ServerProcess
from tests._helpers import http_get, require, serving_pids, wait_for


def _workers_of(profile: Any) -> set[str]:
    return {dict(labels).get("worker", "") for _stack, labels in profile.samples}


def test_pprof_through_the_master_with_two_workers(tmp_path: Path) -> None:
    with ServerProcess(args=["--workers", "2"]) as server:
        root = f"http://{server.status()['debug_address']}/debug"
        base = f"{root}/pprof"
        pids = serving_pids(server)
        wait_for(lambda: (server.run_dir / "private" / "gen-1.1.sock").exists(), what="worker 1's socket")

        status, headers, body = http_get(f"{base}/profile?seconds=1&worker=1&mode=wall")
        assert status == 200, body
        assert (headers["X-Swapprof-Worker"], headers["X-Swapprof-Pid"]) == ("1", str(pids[1]))
        assert read_profile(body).sample_types[-1][0] in ("cpu", "wall")

        status, _, body = http_get(f"{base}/profile?seconds=1")
        assert status == 400
        text = body.decode()
        assert "worker=" in text and f"0 (pid {pids[0]})" in text and f"1 (pid {pids[1]})" in text
        for bad in ("7", "-1", "one", "", "1&worker=0"):
            status, _, body = http_get(f"{base}/heap?worker={bad}")
            assert status == 400 and b"worker" in body, (bad, body)
        status, _, body = http_get(f"{base}/?worker=all")
        assert status == 400 and b"no merged form" in body

        status, headers, body = http_get(f"{base}/profile?seconds=1&worker=all&mode=wall")
        assert status == 200, body
        assert headers["X-Swapprof-Worker"] == "0,1"
        assert headers["X-Swapprof-Pid"] == f"{pids[0]},{pids[1]}"
        merged = read_profile(body)
        assert _workers_of(merged) == {"0", "1"}
        (tmp_path / "merged.pb.gz").write_bytes(body)

        status, _, body = http_get(f"{base}/goroutine?worker=all&debug=1")
        assert status == 200
        assert (
            f"# worker 0 (pid {pids[0]})" in body.decode() and f"# worker 1 (pid {pids[1]})" in body.decode()
        )
        status, _, body = http_get(f"{root}/swapprof/gc?worker=all")
        assert status == 200 and b'"workers"' in body

        # a profile spanning seconds holds one connection, nothing else: while it runs, the
        # master answers (here: the worker's thread list shows the profile at work)
        answers: list[tuple[int, dict[str, str], bytes]] = []
        slow = threading.Thread(target=lambda: answers.append(http_get(f"{base}/profile?seconds=4&worker=0")))
        slow.start()
        try:

            def profiling() -> bool:
                status, _, body = http_get(f"{base}/goroutine?debug=1&worker=0")
                assert status == 200
                return b"swapprof-pprof-request" in body and slow.is_alive()

            wait_for(profiling, what="the master answering while worker 0 profiles")
            assert http_get(f"{root}/swapprof/status")[0] == 200
            assert slow.is_alive()
        finally:
            slow.join()
        assert answers[0][0] == 200

    go = require("go", "golang-go")
    env = {**os.environ, "HOME": str(tmp_path), "PPROF_TMPDIR": str(tmp_path), "PPROF_NO_BROWSER": "1"}
    done = subprocess.run(
        [go, "tool", "pprof", "-raw", str(tmp_path / "merged.pb.gz")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "worker:[0]" in done.stdout and "worker:[1]" in done.stdout, done.stdout[:2000]


def test_one_worker_needs_no_parameter_and_the_token_applies() -> None:
    with ServerProcess(args=["--debug-token", "s3cret"]) as server:
        base = f"http://{server.status()['debug_address']}"
        auth = {"Authorization": "Bearer s3cret"}
        assert http_get(f"{base}/debug/pprof/goroutine?worker=0")[0] == 401
        assert http_get(f"{base}/debug/swapprof/gc")[0] == 401
        pid = serving_pids(server)[0]
        wait_for(lambda: (server.run_dir / "private" / "gen-1.0.sock").exists(), what="worker 0's socket")
        status, headers, body = http_get(f"{base}/debug/pprof/goroutine", headers=auth)
        assert status == 200 and headers["X-Swapprof-Pid"] == str(pid)
        assert read_profile(body).samples
        status, _, body = http_get(f"{base}/debug/pprof/cmdline?worker=0", headers=auth)
        assert status == 200 and b"swapprof.server.generation" in body
        assert http_get(f"{base}/debug/pprof/trace?worker=0", headers=auth)[0] == 501
        assert http_get(f"{base}/debug/swapprof/gc", headers=auth)[0] == 200
        assert http_get(f"{base}/debug/swapprof/nothing", headers=auth)[0] == 404
