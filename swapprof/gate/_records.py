"""A ``--cmd`` server's own upgrade records, when it runs with ``swapprof.integrations``.

gunicorn under ``-c python:swapprof.integrations.gunicorn`` and any server under ``swapprof
observe`` write one record per upgrade to their run dir (``SWAPPROF_RUN_DIR``; the bench gives
a ``--cmd`` server a private one unless ``--env`` or the bench's own environment names one),
in the reference server's format. While the run dir has a ``state.json`` (the integration is
running), the bench waits, after the client has seen the new generation, for the record the
upgrade wrote (bounded by ``--ready-timeout``), and takes the server's view from it: its phases
(``requested``, ``spawn``, ``import``, ``ready``, ``switch``, ``gap``, ``drain``, ``exit``), their
spans, ``service_gap_ms``, ``time_to_switch_ms`` and ``drain_time_ms``; the entry's ``source``
becomes ``client+server``. ``time_to_ready_ms`` and ``upgrade_total_ms`` stay the client's (the
bench's meaning for ``--cmd``, so a run with the integration compares with one without); the
record's own are kept as ``server_time_to_ready_ms`` and ``server_upgrade_total_ms``. A record
that did not succeed makes the upgrade's outcome its own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from swapprof._vocabulary import ENV_RUN_DIR, SUCCESS
from swapprof.gate._target import spans_ms
from swapprof.server._rundir import RunDir

SOURCE = "client+server"
TAKEN = ("service_gap_ms", "time_to_switch_ms", "drain_time_ms")
POLL_S = 0.02


class ServerRecords:
    """The upgrade records in ``run_dir`` (``upgrades.jsonl``), read as they are appended."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = RunDir(run_dir)

    def present(self) -> bool:
        """An integration is recording there (its ``state.json`` exists while it runs)."""
        return self.run_dir.state.exists()

    def read(self) -> list[dict[str, Any]]:
        return self.run_dir.read_upgrades()

    def wait(self, after: int, deadline: float) -> dict[str, Any] | None:
        """The first record after the first ``after`` ones, once written (None at ``deadline``)."""
        while True:
            records = self.read()
            if len(records) > after:
                return records[after]
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)


def merge(entry: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The client's upgrade ``entry`` with the server's phases from its ``record``."""
    merged = {**entry, "source": SOURCE, "phases_ms": dict(record.get("phases_ms") or {})}
    merged["spans_ms"] = spans_ms(record)
    merged.update({key: record.get(key) for key in TAKEN})
    merged["server_time_to_ready_ms"] = record.get("time_to_ready_ms")
    merged["server_upgrade_total_ms"] = record.get("upgrade_total_ms")
    merged["server"] = record.get("server")
    if record.get("outcome") != SUCCESS and entry.get("outcome") == SUCCESS:
        merged.update(outcome=record.get("outcome"), reason=record.get("reason"))
    return merged


def run_dir_of(env: dict[str, str], private: Path) -> Path:
    """The run dir a ``--cmd`` server records to: ``env``'s ``SWAPPROF_RUN_DIR``, else ``private``
    (then set in ``env``, so a stale ``./.swapprof`` of another run is never read)."""
    if not env.get(ENV_RUN_DIR):
        env[ENV_RUN_DIR] = str(private)
    return Path(env[ENV_RUN_DIR])
