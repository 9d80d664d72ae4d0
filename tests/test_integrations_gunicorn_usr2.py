"""gunicorn USR2 upgrades that do not take: the old master, still serving, records them as rolled back.

A new master whose workers cannot load the app (gunicorn halts it), one the operator stops to
back the upgrade out, and one that is killed before it can say anything: each is one record
(``rolled_back`` and why) written by the old master, counted on its /metrics, with its
``state.json`` back, and the old master's next upgrade numbered after it.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from swapprof._process import pid_alive
from swapprof.gate._load import LoadGenerator, error_counts
from tests import _integrations as it
from tests._helpers import wait_for
from tests.test_integrations_gunicorn import GUNICORN, gunicorn, traces

pytestmark = pytest.mark.skipif(not GUNICORN.exists(), reason="needs gunicorn: pip install -e '.[bench]'")
BROKEN = 'raise RuntimeError("a broken deploy")\n'
BROKEN_WHILE_HALTING = """\
import os, signal, time
here = os.path.dirname(os.path.abspath(__file__))
try:
    os.close(os.open(os.path.join(here, "first"), os.O_CREAT | os.O_EXCL))
except FileExistsError:  # the second worker: it fails once gunicorn halts for the first one
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    open(os.path.join(here, "second"), "w").close()
    signal.sigtimedwait({signal.SIGTERM}, 30)
else:  # the first worker: it fails once the second one is waiting
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(here, "second")) and time.monotonic() < deadline:
        time.sleep(0.01)
raise RuntimeError("a broken deploy")
"""


def answered_by(server: it.Server, pids: set[int]) -> bool:
    """Every one of ``pids`` has answered a request (they have all loaded the app)."""
    seen: set[int] = set()

    def more() -> bool:
        body = it.get(server.url)
        if body is not None:
            seen.add(json.loads(body)["pid"])
        return seen >= pids

    return wait_for(more, 60, f"answers from {pids}")


def new_master(tmp: Path, not_these: set[int]) -> int:
    """The USR2 child master (gunicorn writes its pid to PIDFILE.2 while the old master lives)."""
    pid2 = tmp / "g.pid.2"

    def found() -> int | None:
        pid = int(pid2.read_text() or 0) if pid2.exists() else 0
        return pid if pid and pid not in not_these and pid_alive(pid) else None

    return wait_for(found, 60, "the new master")


def test_usr2_whose_new_workers_cannot_load_the_app_is_rolled_back_by_the_old_master(tmp_path: Path) -> None:
    with gunicorn(tmp_path, "--pid", "{tmp}/g.pid") as server:
        master = wait_for(lambda: server.state().get("master_pid"), 60, "state.json")
        workers = wait_for(lambda: it.n_children(master, 2), 60, "two workers")
        answered_by(server, workers)
        (tmp_path / "wsgiapp.py").write_text(BROKEN)  # what the new master's workers will import
        load = LoadGenerator(f"127.0.0.1:{server.port}", concurrency=2, rate=100).start()
        try:
            wait_for(lambda: len(load.results) > 10, 60, "load")
            assert server.proc is not None
            server.proc.send_signal(signal.SIGUSR2)
            [record] = server.wait_records(1)
            done = len(load.results)
            wait_for(lambda: len(load.results) > done + 10, 60, "requests after the rollback")
        finally:
            results = load.stop()
        assert (record["outcome"], record["reason"]) == ("rolled_back", "import_error"), record
        assert record["old_pid"] == master and record["new_pid"] not in (None, master)
        assert record["spawn_mode"] == "exec" and set(record["old_pids"]) == workers
        assert (record["old_generation"], record["new_generation"]) == (1, 2)
        assert record["new_pids"], record  # the workers that failed to boot
        assert error_counts(results) == dict.fromkeys(error_counts(results), 0)  # the old ones served
        assert it.children(master) == workers
        assert wait_for(lambda: server.state().get("master_pid") == master, 30, "the old master's state")
        text = server.metrics()
        assert it.metric(text, "swapprof_upgrades_total", outcome="rolled_back", reason="import_error") == 1
        assert it.metric(text, "swapprof_generation") == 1
        [spans] = wait_for(lambda: traces(server.run_dir) or None, 30, "the trace").values()
        assert master in {s["resource"]["process.pid"] for s in spans}

        (tmp_path / "wsgiapp.py").write_text(it.WSGI_APP)
        server.proc.send_signal(signal.SIGHUP)  # the old master's own next upgrade
        second = server.wait_records(2)[1]
        assert (second["id"], second["outcome"], second["new_generation"]) == (2, "success", 2)


def test_usr2_whose_second_worker_fails_while_gunicorn_halts_is_still_an_import_error(tmp_path: Path) -> None:
    """gunicorn raises ``HaltServer`` again out of ``Arbiter.halt`` and never calls ``on_exit``:
    the new master still hands the upgrade back, at its interpreter's exit, with why it halted."""
    with gunicorn(tmp_path, "--pid", "{tmp}/g.pid") as server:
        master = wait_for(lambda: server.state().get("master_pid"), 60, "state.json")
        answered_by(server, wait_for(lambda: it.n_children(master, 2), 60, "two workers"))
        (tmp_path / "wsgiapp.py").write_text(BROKEN_WHILE_HALTING)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGUSR2)
        [record] = server.wait_records(1)
        assert (record["outcome"], record["reason"]) == ("rolled_back", "import_error"), record
        assert "During handling of the above exception" in server.log_text()  # on_exit was skipped
        assert wait_for(lambda: server.state().get("master_pid") == master, 30, "the old master's state")


def test_usr2_backed_out_or_killed_is_rolled_back_by_the_old_master(tmp_path: Path) -> None:
    with gunicorn(tmp_path, "--pid", "{tmp}/g.pid") as server:
        master = wait_for(lambda: server.state().get("master_pid"), 60, "state.json")
        workers = wait_for(lambda: it.n_children(master, 2), 60, "two workers")
        assert server.proc is not None
        seen = {master}
        for n, (sig, reason) in enumerate(
            ((signal.SIGTERM, "master_stopping"), (signal.SIGKILL, "crashed_before_ready")), 1
        ):
            server.proc.send_signal(signal.SIGUSR2)
            child = new_master(tmp_path, seen)
            seen.add(child)
            wait_for(lambda child=child: it.n_children(child, 2), 60, "its workers")  # type: ignore[misc]
            wait_for(lambda c=child: server.state().get("master_pid") == c, 30, "its state")  # type: ignore[misc]
            os.kill(child, sig)  # the operator backs the upgrade out (or it dies)
            record = server.wait_records(n)[n - 1]
            assert (record["id"], record["outcome"], record["reason"]) == (n, "rolled_back", reason), record
            assert record["new_pid"] == child and set(record["old_pids"]) == workers
            wait_for(lambda: server.state().get("master_pid") == master, 30, "the old master's state")
            wait_for(lambda child=child: not pid_alive(child), 30, "the new master gone")  # type: ignore[misc]
        assert it.children(master) >= workers
        text = server.metrics()
        for reason in ("master_stopping", "crashed_before_ready"):
            assert it.metric(text, "swapprof_upgrades_total", outcome="rolled_back", reason=reason) == 1
