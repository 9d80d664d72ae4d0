"""The run directory: every file a master and its generations share, and every write to it.

::

    RUN_DIR/control.sock          the master's control socket (0600)
    RUN_DIR/master.pid            the master's pid, while it runs
    RUN_DIR/state.json            addresses, serving generation, debug address (atomic rewrite)
    RUN_DIR/upgrades.jsonl        one line per ended upgrade
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

    def append_upgrade(self, record: dict[str, Any]) -> None:
        """Append one JSON line, whole or not at all: a short write (a full disk) is cut off
        again, so readers never meet half a record."""
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.upgrades, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
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
