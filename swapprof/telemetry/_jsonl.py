"""The embedded span exporter: one JSON object per line, appended to a bounded file.

Several processes (master and generations) append to the same file, so the file is shared
state with a small protocol:

- each span is one ``write`` of one whole line on an ``O_APPEND`` descriptor: lines from
  different processes never interleave;
- before a batch, a writer compares the inode at the path with the one it holds open and
  re-opens the path when they differ (another process rotated the file);
- a writer holds a shared ``flock`` on ``PATH.lock`` while it writes a batch;
- when a line would take the file past ``max_bytes``, the writer takes the lock exclusively,
  looks again (another writer may have rotated meanwhile), and if the line still does not fit
  renames ``PATH`` to ``PATH.1`` (replacing the previous one) and opens a fresh ``PATH``.

So at most two files exist, neither larger than ``max_bytes``. Spans lost on the way are
counted in ``dropped``, by reason: ``rotated_out`` (lines of the ``PATH.1`` a rotation
replaced, counted exactly since nobody writes during a rotation), ``too_large`` (one span longer
than ``max_bytes``), ``write_error`` (including a lock held longer than ``LOCK_WAIT_S`` by a
stopped process). ``read_spans`` reads ``PATH.1`` then ``PATH``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from swapprof.telemetry._settings import DEFAULT_SPAN_FILE_MAX_BYTES

log = logging.getLogger("swapprof.telemetry")

DROP_REASONS = ("rotated_out", "too_large", "write_error")
LOCK_WAIT_S = 2.0
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
        "resource": dict(span.resource.attributes),
    }


def rotated_path(path: str | os.PathLike[str]) -> str:
    return os.fspath(path) + ".1"


class JsonLinesSpanExporter(SpanExporter):
    """Appends spans to ``path``, rotating to ``path.1`` at ``max_bytes`` (0: never)."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_SPAN_FILE_MAX_BYTES) -> None:
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.dropped_by_reason = dict.fromkeys(DROP_REASONS, 0)
        self.rotations = 0
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._ino = -1
        self._lock_fd: int | None = None
        try:  # opened up front: a process's fd count does not change at its first export
            self._reopen()
            if max_bytes:
                self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            log.debug("cannot open %s", self.path, exc_info=True)

    @property
    def dropped(self) -> int:
        """Spans that are not (or no longer) in either file, for any reason."""
        return sum(self.dropped_by_reason.values())

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            lines = [(json.dumps(span_to_dict(s), default=str) + "\n").encode() for s in spans]
            with self._lock:
                return self._write(lines)
        except Exception:  # telemetry never raises into the host
            log.debug("span export failed", exc_info=True)
            self.dropped_by_reason["write_error"] += len(spans)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        with self._lock:
            self._close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- internals (called with self._lock held) -----------------------------------------------
    def _write(self, lines: list[bytes]) -> SpanExportResult:
        """Write under a shared flock (so no one rotates mid-batch); rotate under an exclusive one."""
        written = 0
        try:
            self._flock(fcntl.LOCK_SH)
            size = self._follow()
            for line in lines:
                if self.max_bytes and len(line) > self.max_bytes:
                    self.dropped_by_reason["too_large"] += 1
                elif self.max_bytes and size + len(line) > self.max_bytes:
                    size = self._rotate(len(line))
                if not self.max_bytes or len(line) <= self.max_bytes:
                    assert self._fd is not None
                    os.write(self._fd, line)
                    size += len(line)
                written += 1
        except OSError:
            log.debug("cannot write %s", self.path, exc_info=True)
            self.dropped_by_reason["write_error"] += len(lines) - written
            self._close()
            return SpanExportResult.FAILURE
        finally:
            self._flock(fcntl.LOCK_UN)
        return SpanExportResult.SUCCESS

    def _flock(self, operation: int) -> None:
        """flock the lock file, giving up after ``LOCK_WAIT_S`` (a stopped process holds it)."""
        if self._lock_fd is None:
            if self.max_bytes and operation != fcntl.LOCK_UN:
                raise OSError(f"no lock file for {self.path}")
            return
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self._lock_fd, operation | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.path}.lock stayed locked for {LOCK_WAIT_S} s") from None
                time.sleep(0.002)

    def _follow(self) -> int:
        """Open the file now at ``path`` if it is not the one held (rotated, deleted); its size."""
        try:
            stale = self._fd is None or os.stat(self.path).st_ino != self._ino
        except FileNotFoundError:
            stale = True
        if stale:
            self._reopen()
        assert self._fd is not None
        return os.fstat(self._fd).st_size

    def _rotate(self, need: int) -> int:
        """``path`` -> ``path.1`` under the exclusive lock, unless another writer's rotation left
        room for ``need`` more bytes; the size of the file now held. Returns holding the shared lock.

        (Converting a flock is not atomic: the shared lock is dropped first, which is why the
        file is looked at again once the exclusive lock is held.)
        """
        self._flock(fcntl.LOCK_EX)
        size = self._follow()
        if size + need > self.max_bytes:
            old = rotated_path(self.path)
            discarded = _count_lines(old)  # exact: nobody writes while the exclusive lock is held
            os.replace(self.path, old)
            self._reopen()
            self.rotations += 1
            self.dropped_by_reason["rotated_out"] += discarded
            size = 0
        self._flock(fcntl.LOCK_SH)
        return size

    def _reopen(self) -> None:
        self._close()
        self._fd = os.open(self.path, _FLAGS, 0o644)
        self._ino = os.fstat(self._fd).st_ino

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _count_lines(path: str) -> int:
    count = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                count += chunk.count(b"\n")
    except FileNotFoundError:
        return 0
    return count


def read_spans(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a span file back, its rotated predecessor ``PATH.1`` first; malformed lines (a crash
    mid-write, a line cut by a rotation) are skipped."""
    spans = []
    for name in (rotated_path(path), os.fspath(path)):
        try:
            with open(name, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        spans.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            continue
    return spans
