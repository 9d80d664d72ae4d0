"""A retired generation exits the way a Python program does: its non-daemon threads are
waited for and the app's atexit handlers run.

Apps flush there (the OpenTelemetry SDK's providers shut down from atexit, sending their last
batch; logging closes its handlers; a thread started at shutdown finishes its upload). Every
generation, exec'd or forked from the zygote, leaves by ``os._exit`` to skip the interpreter's
teardown (~100 ms of CPU per FastAPI worker), so both are done first, explicitly: this test
fails without that.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swapprof.testing import ServerProcess
from tests._helpers import wait_for

APP = """
import atexit
import os
import threading
import time


def _log(what: str) -> None:
    with open(os.environ["EXIT_LOG"], "a") as log:
        log.write(f"{os.getpid()} {what}\\n")


def _upload() -> None:  # a last upload, in a thread of its own, that exit must wait for
    time.sleep(0.2)
    _log("thread")


atexit.register(_log, "atexit")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":  # startup answered; at shutdown, the last upload starts
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        threading.Thread(target=_upload, daemon=False).start()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@pytest.mark.parametrize("mode", ["exec", "fork"])
def test_the_old_generation_waits_for_threads_and_runs_atexit_handlers(tmp_path: Path, mode: str) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "exitapp.py").write_text(APP)
    exit_log = tmp_path / "exits.log"
    env = {**os.environ, "EXIT_LOG": str(exit_log)}
    args = ["--app-dir", str(app_dir), "--workers", "2"]
    if mode == "fork":
        args += ["--preload", "uvicorn"]
    with ServerProcess("exitapp:app", args=args, env=env) as server:
        old = {g["pid"] for g in server.status()["generations"]}
        record = server.upgrade()
        assert record["outcome"] == "success" and record["spawn_mode"] == mode
        want = {f"{pid} {what}" for pid in old for what in ("thread", "atexit")}

        def logged() -> set[str]:
            return set(exit_log.read_text().splitlines()) if exit_log.exists() else set()

        exited = wait_for(lambda: want <= logged(), what=lambda: f"{sorted(want)} in {sorted(logged())}")
    assert exited
