"""No --preload, --workers 2: one fresh interpreter imports the app and the workers are its forks
(the upgrade's app zygote); an app that cannot be forked safely gets every worker exec'd.
Real processes, real sockets on port 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swapprof._errors import ConfigError
from swapprof._process import children
from swapprof.server._cli_format import format_upgrade
from swapprof.server._config import ServerConfig
from swapprof.testing import ServerProcess
from tests._helpers import http_get, wait_for

APP = """
import os
{extra}
os.environ["FROM_DOTENV"] = "loaded at import"  # what load_dotenv() does
GENERATION_AT_IMPORT = int(os.environ.get("SWAPPROF_GENERATION", "-1"))

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = ('{{"pid": %d, "imported_in": %d, "generation": %d, "env": "%s"}}' % (
        os.getpid(), IMPORTED_IN, GENERATION_AT_IMPORT, os.environ.get("FROM_DOTENV"))).encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]}})
    await send({{"type": "http.response.body", "body": body}})


IMPORTED_IN = os.getpid()
"""
THREAD = "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), daemon=True).start()"
SOCKET = "import socket\nHELD = socket.socket()  # a connection pool that connected at import, say"


def _app(tmp_path: Path, extra: str = "") -> Path:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "forkapp.py").write_text(APP.format(extra=extra))
    return app_dir


def _answers(server: ServerProcess, want: int) -> dict[int, int]:
    """pid -> the pid that imported the app, from new connections, until ``want`` distinct pids;
    every answer also says the generation its import saw and what the import put in os.environ."""
    seen: dict[int, int] = {}

    def enough() -> bool:
        status, _, body = http_get(server.url + "/")
        assert status == 200
        answer = json.loads(body)
        assert answer["generation"] == server.status()["serving_generation"], answer
        assert answer["env"] == "loaded at import", answer  # still there after the fork
        seen[answer["pid"]] = answer["imported_in"]
        return len(seen) >= want

    wait_for(enough, what=lambda: f"{want} distinct pids answering (saw {sorted(seen)})")
    return seen


def _only_workers_left(server: ServerProcess) -> set[int]:
    """The master's children once the app zygote is gone: the serving workers only."""

    def settled() -> set[int] | None:
        workers = {g["pid"] for g in server.status()["generations"]}
        return workers if set(children(server.pid)) == workers else None

    return wait_for(settled, what=lambda: f"the master's children {children(server.pid)}")


def test_setting_flag_and_env() -> None:
    assert ServerConfig("m:app").fork_workers is True
    assert ServerConfig.from_env("m:app", {"SWAPPROF_FORK_WORKERS": "0"}).fork_workers is False
    assert ServerConfig.from_env("m:app", {"SWAPPROF_FORK_WORKERS": "0"}, fork_workers=True).fork_workers
    with pytest.raises(ConfigError, match="SWAPPROF_FORK_WORKERS"):
        ServerConfig.from_env("m:app", {"SWAPPROF_FORK_WORKERS": "yes"})


def test_the_workers_are_forks_of_one_fresh_import(tmp_path: Path) -> None:
    app_dir = _app(tmp_path)
    with ServerProcess("forkapp:app", args=["--app-dir", str(app_dir), "--workers", "2"]) as server:
        for _ in range(2):
            record = server.upgrade()
            assert record["outcome"] == "success", record
            assert record["spawn_mode"] == "exec" and record["workers_forked"] == 2, record
            assert "2 workers forked from its one import" in format_upgrade(record)
            new = record["worker_phases_ms"]["new"]
            assert new["0"]["import"] == new["1"]["import"] > 0  # one import, reported by both
            answers = _answers(server, 2)
            assert set(answers) == set(record["new_pids"])
            importer = set(answers.values())
            assert len(importer) == 1 and not importer & set(answers)  # the app zygote, gone now
            _only_workers_left(server)


@pytest.mark.parametrize(("extra", "why"), [(THREAD, "started a thread"), (SOCKET, "-> socket:[")])
def test_an_app_that_cannot_be_forked_gets_every_worker_execd(tmp_path: Path, extra: str, why: str) -> None:
    app_dir = _app(tmp_path, extra)
    with ServerProcess("forkapp:app", args=["--app-dir", str(app_dir), "--workers", "2"]) as server:
        records = [server.upgrade() for _ in range(2)]
        answers = _answers(server, 2)
        log = server.log()
    for record in records:
        assert record["outcome"] == "success" and "workers_forked" not in record, record
        assert "fork_workers_refused" not in record  # refused at startup, for good: not tried again
    assert all(pid == imported for pid, imported in answers.items())  # each imported the app itself
    said = [line for line in log.splitlines() if "cannot be forked safely" in line]
    assert len(said) == 1 and why in said[0], log


def test_no_fork_workers_execs_each(tmp_path: Path) -> None:
    app_dir = _app(tmp_path)
    args = ["--app-dir", str(app_dir), "--workers", "2", "--no-fork-workers"]
    with ServerProcess("forkapp:app", args=args) as server:
        record = server.upgrade()
        answers = _answers(server, 2)
    assert record["outcome"] == "success" and "workers_forked" not in record, record
    assert all(pid == imported for pid, imported in answers.items())
