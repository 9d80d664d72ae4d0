"""A retired generation exits the way a Python program does: the app's atexit handlers run.

Apps flush there (the OpenTelemetry SDK's providers shut down from atexit, sending their last
batch; logging closes its handlers). A generation forked from the zygote leaves by
``os._exit`` to skip the interpreter's teardown, so the handlers are run first, explicitly:
this test fails without that, in the forked case, while the exec'd case passes either way.
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


def _flush() -> None:
    with open(os.environ["EXIT_LOG"], "a") as log:
        log.write(f"{os.getpid()}\\n")


atexit.register(_flush)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@pytest.mark.parametrize("mode", ["exec", "fork"])
def test_the_old_generation_runs_the_apps_atexit_handlers(tmp_path: Path, mode: str) -> None:
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
        exited = wait_for(
            lambda: old <= {int(x) for x in exit_log.read_text().split()} if exit_log.exists() else False,
            what=lambda: f"both old workers {sorted(old)} in {exit_log}",
        )
    assert exited
