"""The run directory: every file a master and its generations share, and every write to it.

::

    RUN_DIR/control.sock          the master's control socket (0600)
    RUN_DIR/master.pid            the master's pid, while it runs
    RUN_DIR/state.json            addresses, serving generation, debug address (atomic rewrite)
    RUN_DIR/upgrades.jsonl        one line per ended upgrade (rotated at UPGRADES_MAX_BYTES to
                                  upgrades.jsonl.1: the two files hold the latest records)
    RUN_DIR/spans.jsonl           the embedded span file (swapprof.telemetry)
    RUN_DIR/handoff/gen-N.W.json  the trace context worker W of generation N records switch/drain/exit under
    RUN_DIR/handoff/reload-N.W.json the modules ``ctl reload`` asks worker W of generation N to reload
    RUN_DIR/handoff/imported-N.W.json the non-app modules worker W of generation N imported
    RUN_DIR/handoff/zygote-S.preload.json the learned modules zygote S imports, one at a time
    RUN_DIR/handoff/pages-Z.json  the pages a generation forked from zygote Z copied from it (``_cow``)
    RUN_DIR/preload.json          what ``--preload auto`` learned and dropped (a restarted master
                                  starts its zygote warm from it)
    RUN_DIR/private/gen-N.W.sock  worker W of generation N's private endpoint, for the master only
                                  (0600 in a 0700 directory; the worker removes it at exit)

Writes are atomic (a temporary file renamed over the target) where a reader may look at any
time. The master writes; generations read their handoff files and write only their ``imported`` list and,
forked from a zygote, its ``pages``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from swapprof._vocabulary import DEFAULT_RUN_DIR

__all__ = ["DEFAULT_RUN_DIR", "RunDir"]

CONTROL_NAME = "control.sock"
PID_NAME = "master.pid"
STATE_NAME = "state.json"
UPGRADES_NAME = "upgrades.jsonl"
UPGRADES_MAX_BYTES = 16 * 1024 * 1024
"""Where ``upgrades.jsonl`` is rotated (~10,000 records; the previous file is kept as ``.1``)."""
HANDOFF_DIR = "handoff"
PRIVATE_DIR = "private"
PRELOAD_NAME = "preload.json"


class RunDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).resolve()

    # -- paths -------------------------------------------------------------------------------
    @property
    def control(self) -> Path:
        return self.path / CONTROL_NAME

    @property
    def pid_file(self) -> Path:
        return self.path / PID_NAME

    @property
    def state(self) -> Path:
        return self.path / STATE_NAME

    @property
    def upgrades(self) -> Path:
        return self.path / UPGRADES_NAME

    @property
    def upgrades_rotated(self) -> Path:
        return self.path / (UPGRADES_NAME + ".1")

    def handoff(self, generation: int, worker: int = 0) -> Path:
        return self.path / HANDOFF_DIR / f"gen-{generation}.{worker}.json"

    def reload_request(self, generation: int, worker: int = 0) -> Path:
        return self.path / HANDOFF_DIR / f"reload-{generation}.{worker}.json"

    def imported(self, generation: int, worker: int = 0) -> Path:
        return self.path / HANDOFF_DIR / f"imported-{generation}.{worker}.json"

    def zygote_preload(self, serial: int) -> Path:
        return self.path / HANDOFF_DIR / f"zygote-{serial}.preload.json"

    def cow_pages(self, zygote_pid: int) -> Path:
        return self.path / HANDOFF_DIR / f"pages-{zygote_pid}.json"

    @property
    def learned(self) -> Path:
        return self.path / PRELOAD_NAME

    def private_socket(self, generation: int, worker: int = 0) -> Path:
        return self.path / PRIVATE_DIR / f"gen-{generation}.{worker}.sock"

    # -- writes ------------------------------------------------------------------------------
    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def write_json(self, path: Path, value: Any, indent: int | None = None) -> None:
        """Replace ``path`` atomically with ``value`` as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(value, indent=indent) + "\n")
        tmp.replace(path)

    def write_state(self, state: dict[str, Any]) -> None:
        self.write_json(self.state, state, indent=2)

    def write_pid(self) -> None:
        self.pid_file.write_text(f"{os.getpid()}\n")

    def append_upgrade(self, record: dict[str, Any], max_bytes: int = UPGRADES_MAX_BYTES) -> None:
        """Append one JSON line, whole or not at all: a short write (a full disk) is cut off
        again, so readers never meet half a record. A file that would pass ``max_bytes``
        becomes ``upgrades.jsonl.1`` first (replacing the one before), under an advisory lock
        that every writer of this run dir takes (two gunicorn masters share one in a USR2)."""
        line = (json.dumps(record) + "\n").encode()
        fd = self._open_upgrades_locked()
        try:
            start = os.fstat(fd).st_size
            if start and start + len(line) > max_bytes and self._is_current(fd):
                os.replace(self.upgrades, self.upgrades_rotated)
                os.close(fd)
                fd = self._open_upgrades_locked()
                start = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                while written < len(line):
                    written += os.write(fd, line[written:])
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)

    def _open_upgrades_locked(self) -> int:
        """``upgrades.jsonl`` opened for appending (created if missing), under its writers' lock."""
        fd = os.open(self.upgrades, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            raise
        return fd

    def _is_current(self, fd: int) -> bool:
        """``fd`` is still ``upgrades.jsonl`` (not a file another writer has just rotated)."""
        try:
            return os.stat(self.upgrades).st_ino == os.fstat(fd).st_ino
        except OSError:
            return False

    def read_upgrades(self) -> list[dict[str, Any]]:
        """Every record still on disk, oldest first (``upgrades.jsonl.1``, then ``upgrades.jsonl``);
        a line that is not a JSON object is skipped."""
        found: list[dict[str, Any]] = []
        for path in (self.upgrades_rotated, self.upgrades):
            with contextlib.suppress(OSError):
                for line in path.read_text().splitlines():
                    with contextlib.suppress(ValueError):
                        value = json.loads(line)
                        if isinstance(value, dict):
                            found.append(value)
        return found

    def remove_master_files(self) -> None:
        for path in (self.control, self.pid_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- reads (generation side) ---------------------------------------------------------------
    def read_json(self, path: Path) -> Any:
        """The JSON in ``path``, or None when it is missing or not JSON."""
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
