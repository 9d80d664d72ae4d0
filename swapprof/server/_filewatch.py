"""Has any of these files changed on disk? Asked on every upgrade, answered in microseconds.

The zygote must notice that a preloaded package changed (a ``pip install`` between upgrades)
before it forks a generation from stale code. Comparing (mtime, size) of every preloaded file
costs a stat per file: about 1.5-4 ms for the ~320 files that uvicorn and the OTel SDK load,
on the upgrade's critical path. inotify on their directories says whether anything happened
there at all; only then are the files compared (an event may concern an unrelated file). Without
inotify (a limit reached, another OS) every question compares the files.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
# what can change a file inside a watched directory, or the directory itself
IN_MASK = (
    0x2  # IN_MODIFY
    | 0x4  # IN_ATTRIB
    | 0x8  # IN_CLOSE_WRITE
    | 0x40  # IN_MOVED_FROM
    | 0x80  # IN_MOVED_TO
    | 0x100  # IN_CREATE
    | 0x200  # IN_DELETE
    | 0x400  # IN_DELETE_SELF
    | 0x800  # IN_MOVE_SELF
    | 0x01000000  # IN_ONLYDIR
)

Stamp = tuple[int, int]


def stamp(path: str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class _Inotify:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def watching(cls, directories: set[str]) -> _Inotify | None:
        """An inotify instance watching ``directories``; None when that is not possible."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        for directory in directories:
            if libc.inotify_add_watch(fd, os.fsencode(directory), IN_MASK) < 0:
                os.close(fd)  # e.g. fs.inotify.max_user_watches reached: compare every time
                return None
        return cls(fd)

    def happened(self) -> bool:
        """Whether events arrived since the last call (reads them all)."""
        seen = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            except OSError:
                return True  # cannot tell: look
            if not data:
                return seen
            seen = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class FileStamps:
    """The (mtime_ns, size) of some files now, to tell later which of them changed."""

    def __init__(self, paths: set[str], use_inotify: bool = True) -> None:
        self.stamps: dict[str, Stamp | None] = {}
        self._seen: list[str] = []
        directories = {os.path.dirname(p) for p in paths}
        # watch first, then stamp: a change in between is then an event, never missed
        self._inotify = _Inotify.watching(directories) if use_inotify and paths else None
        for path in paths:
            self.stamps[path] = stamp(path)

    def filenos(self) -> list[int]:
        """The fds this holds (for a forked child to close)."""
        return [self._inotify.fd] if self._inotify is not None else []

    @property
    def watching(self) -> bool:
        return self._inotify is not None

    def changed(self) -> list[str]:
        """The files whose mtime or size differs from when they were stamped (sorted)."""
        if self._inotify is not None and not self._inotify.happened() and not self._seen:
            return []
        # read the events, then compare: a change after this point is a new event; once a
        # change was seen, compare every time (its events are gone)
        self._seen = sorted(path for path, before in self.stamps.items() if stamp(path) != before)
        return self._seen

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
