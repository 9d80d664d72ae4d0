"""``--preload auto``: the zygote learns what to preload from the serving generation.

Real processes, a real ``startproject`` Django site: after one learning round the generation is
forked from a zygote that already holds ``django.db`` (the app module sees it in sys.modules
before its own first line runs), app changes still take effect, a dependency that starts a
thread or keeps a socket at import is dropped by name while the zygote keeps forking, a changed
dependency replaces the zygote, and a restarted master starts warm from the run dir.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swapprof.server._cli_format import format_status
from swapprof.telemetry import read_spans
from swapprof.testing import ServerProcess
from tests._helpers import http_get, wait_for

MARK = "import sys\nPRELOADED = sorted(m for m in ('django.db', 'deplib') if m in sys.modules)\n"
URLS = """
from django.http import HttpResponse

import deplib
import mysite.asgi


def hello(request):
    return HttpResponse(f"hello v1 dep {deplib.VALUE} preloaded {','.join(mysite.asgi.PRELOADED)}\\n")


urlpatterns += [path("", hello)]
"""


@pytest.fixture(scope="module")
def django_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``django-admin startproject mysite``, one view; its asgi.py notes what was preloaded."""
    root = tmp_path_factory.mktemp("django-auto")
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(root)], check=True, timeout=120
    )
    asgi = root / "mysite" / "asgi.py"
    asgi.write_text(MARK + asgi.read_text())  # runs first, in the freshly forked generation
    with open(root / "mysite" / "urls.py", "a") as urls:
        urls.write(URLS)
    with open(root / "mysite" / "settings.py", "a") as settings:
        settings.write('\nALLOWED_HOSTS = ["*"]\n')
    return root


def _lib(tmp_path: Path, **modules: str) -> Path:
    """A directory of dependencies outside the project (on PYTHONPATH, like an installed one)."""
    lib = tmp_path / "lib"
    lib.mkdir(exist_ok=True)
    for name, text in modules.items():
        (lib / f"{name}.py").write_text(text)
    return lib


def _env(lib: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(lib), env.get("PYTHONPATH", "")) if p)
    return env


def _learned(server: ServerProcess, reports: int = 1) -> dict[str, Any]:
    """Wait until the zygote preloads what the generations reported and a spare waits."""

    seen: list[Any] = [None]

    def settled() -> dict[str, Any] | None:
        zygote = seen[0] = server.status()["zygote"]
        if not zygote or not zygote["spare_pid"]:
            return None
        preload = zygote["preload"]
        if preload["reports"] < reports or preload["learning"] or not preload["learned_loaded"]:
            return None
        return dict(zygote)

    found: dict[str, Any] = wait_for(
        settled, timeout=90, what=lambda: f"a zygote with the learned modules; last seen: {seen[0]}"
    )
    return found


def _site(server: ServerProcess) -> str:
    status, _, body = http_get(server.url + "/")
    assert status == 200, body
    return body.decode().strip()


def test_django_forks_from_a_zygote_holding_django_db_and_app_changes_take_effect(
    django_site: Path, tmp_path: Path
) -> None:
    lib = _lib(tmp_path, deplib="VALUE = 1\n")
    args = ["--app-dir", str(django_site), "--preload", "auto", "--drain-grace", "0.2"]
    with ServerProcess("mysite.asgi:application", args=args, env=_env(lib)) as server:
        assert _site(server) == "hello v1 dep 1 preloaded"  # generation 1: nothing learned yet
        zygote = _learned(server)
        first = server.upgrade()
        assert first["outcome"] == "success" and first["spawn_mode"] == "fork"
        assert first["zygote_learned"] is True
        # deplib is imported by the first request (urls.py is loaded lazily): learned from the
        # report generation 1 sent after its drain, in the zygote for the next upgrade
        assert _site(server) == "hello v1 dep 1 preloaded django.db"
        _learned(server, reports=3)  # generation 1 after READY and after its drain, 2 after READY
        urls = django_site / "mysite" / "urls.py"
        urls.write_text(urls.read_text().replace("hello v1", "hello v2"))  # app code changed
        second = server.upgrade()
        answer = _site(server)
        # forked from the zygote, worker 0 lists the pages it copied, for the next spare (_cow)
        pages = wait_for(lambda: list((server.run_dir / "handoff").glob("pages-*.json")), what="a pages list")
        copied = json.loads(pages[0].read_text())["runs"]
        status = server.status()
        spans = wait_for(
            lambda: [s for s in read_spans(server.run_dir / "spans.jsonl") if s["name"] == "spawn"][-1:],
            what="a spawn span",
        )
        learned = json.loads((server.run_dir / "preload.json").read_text())["modules"]
    assert answer == "hello v2 dep 1 preloaded deplib,django.db"
    assert second["outcome"] == "success" and second["spawn_mode"] == "fork"
    assert "zygote" not in second["phases_ms"]  # app code is never preloaded: no stale zygote
    preload = status["zygote"]["preload"]
    assert preload["mode"] == "auto" and preload["learned_loaded"] > 100
    assert preload["code_held"] >= 10  # the models modules: their bytecode, read in the zygote
    assert f"{preload['code_held']} held as bytecode" in format_status(status)
    assert "django.db" in learned and "deplib" in learned
    assert not [m for m in learned if m.split(".")[0] == "mysite"]
    # modules that need the project's settings cannot be preloaded: dropped by name, said why
    assert preload["dropped"]["django.contrib.auth.models"]["reason"] == "import_failed"
    assert "preload auto:" in format_status(status) and "dropped django.contrib.auth.models" in format_status(
        status
    )
    assert zygote["rss_kb"] and zygote["spare_rss_kb"]
    assert spans[0]["attributes"]["swapprof.zygote.learned"] is True
    assert copied


THREADLIB = (
    "import threading, time\n"
    "threading.Thread(target=lambda: time.sleep(3600), name='metrics-pusher', daemon=True).start()\n"
    "VALUE = 'thread'\n"
)
SOCKLIB = "import socket\nKEEP = socket.socket()\nVALUE = 'socket'\n"
APP = """
import threadlib, socklib, deplib

from swapprof.server.demo import app as demo_app


async def app(scope, receive, send):
    await demo_app(scope, receive, send)
"""


def test_unsafe_dependencies_are_dropped_by_name_and_the_zygote_keeps_forking(tmp_path: Path) -> None:
    lib = _lib(tmp_path, threadlib=THREADLIB, socklib=SOCKLIB, deplib="VALUE = 1\n")
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "unsafeapp.py").write_text(APP)
    args = ["--app-dir", str(app_dir), "--preload", "auto"]
    with ServerProcess("unsafeapp:app", args=args, env=_env(lib)) as server:
        zygote = _learned(server)
        records = [server.upgrade() for _ in range(2)]
        log = server.log()
        metrics = http_get(f"http://{server.status()['debug_address']}/metrics")[2].decode()
    dropped = zygote["preload"]["dropped"]
    assert dropped["threadlib"]["reason"] == "thread" and "metrics-pusher" in dropped["threadlib"]["detail"]
    assert dropped["socklib"]["reason"] == "open_fds"
    assert "deplib" not in dropped
    assert "learned module(s) from the preload (thread): threadlib" in log
    assert "(open_fds): socklib" in log
    assert [(r["outcome"], r["spawn_mode"], r["zygote_learned"]) for r in records] == [
        ("success", "fork", True)
    ] * 2
    assert re.search(
        r'^swapprof_zygote_preload_dropped_total\{[^}]*reason="thread"[^}]*\} 1\.0$', metrics, re.M
    )


def test_a_changed_dependency_replaces_the_zygote_and_a_restarted_master_starts_warm(tmp_path: Path) -> None:
    lib = _lib(tmp_path, deplib="VALUE = 1\n")
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "depapp.py").write_text(
        "import deplib\nfrom swapprof.server.demo import app as demo_app\n\n\n"
        "async def app(scope, receive, send):\n    await demo_app(scope, receive, send)\n"
    )
    args = ["--app-dir", str(app_dir), "--preload", "auto"]
    run_dir = tmp_path / "run"
    with ServerProcess("depapp:app", args=args, env=_env(lib), run_dir=run_dir) as server:
        before = _learned(server)
        (lib / "deplib.py").write_text("VALUE = 2  # a new release\n")
        stale = server.upgrade()
        after = server.status()["zygote"]
        log = server.log()
    assert stale["outcome"] == "success" and stale["spawn_mode"] == "fork"
    assert stale["phases_ms"]["zygote"] > 0 and "is stale" in log
    assert after["serial"] > before["serial"]
    with ServerProcess("depapp:app", args=args, env=_env(lib), run_dir=run_dir) as server:
        status = server.status()["zygote"]  # the first zygote: from the learned file
        record = server.upgrade()
        log = server.log()
    assert status["serial"] == 1 and status["preload"]["from_run_dir"] is True
    assert status["preload"]["learned_loaded"] > 0
    assert "learned preload:" in log
    assert record["spawn_mode"] == "fork" and record["zygote_learned"] is True


ENVLIB = "import os\nMODE = os.environ.get('ENVLIB_MODE', 'default')  # read once, at import\n"
ENVAPP = """
import os

os.environ["ENVLIB_MODE"] = "set-by-app"  # the app configures a library before importing it
import envlib


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": envlib.MODE.encode()})
"""


def test_a_library_configured_by_the_app_before_its_import_sees_the_zygotes_environment(
    tmp_path: Path,
) -> None:
    """Why ``auto`` is not the default (docs/zygote.md): exec'd, the library sees what the app
    set; preloaded by ``auto``, it was imported in the zygote before the app ran."""
    lib = _lib(tmp_path, envlib=ENVLIB)
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "envapp.py").write_text(ENVAPP)
    args = ["--app-dir", str(app_dir), "--preload", "auto"]
    with ServerProcess("envapp:app", args=args, env=_env(lib)) as server:
        exec_answer = http_get(server.url + "/")[2]  # generation 1 was exec'd
        _learned(server)
        record = server.upgrade()
        forked_answer = http_get(server.url + "/")[2]
    assert exec_answer == b"set-by-app"
    assert record["spawn_mode"] == "fork" and record["zygote_learned"] is True
    assert forked_answer == b"default"
