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
import time

from swapprof.server._libc import libc

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
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except AttributeError:
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


# statfs(2) f_type of filesystems whose changes all pass through this kernel, so inotify sees
# them: ext2/3/4, xfs, btrfs, tmpfs, overlay, zfs, f2fs, squashfs, vfat, erofs. Not NFS, CIFS,
# FUSE, 9p and the like: another host (or a userspace server) changes files silently there.
LOCAL_FILESYSTEMS = frozenset(
    {0xEF53, 0x58465342, 0x9123683E, 0x01021994, 0x794C7630, 0x2FC12FC1, 0xF2F52010, 0x73717368, 0x4D44,
     0xE0F5E1E2}
)  # fmt: skip


def filesystem_type(path: str) -> int | None:
    """statfs(2)'s f_type for ``path`` (the first field of struct statfs on Linux), or None."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    try:
        if libc.statfs(os.fsencode(path), buf) != 0:
            return None
    except AttributeError:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def inotify_sees_all(paths: set[str]) -> bool:
    """Whether inotify on the files' directories would report every change to these files: no
    symlink on the way (a release switched by moving a ``current`` link changes no watched
    directory) and a local filesystem under each directory."""
    directories = {os.path.dirname(os.path.abspath(p)) for p in paths}
    for directory in directories:
        if os.path.realpath(directory) != directory:
            return False
        if filesystem_type(directory) not in LOCAL_FILESYSTEMS:
            return False
    return not any(os.path.islink(p) for p in paths)


class FileStamps:
    """The (mtime_ns, size) of some files now, to tell later which of them changed."""

    def __init__(self, paths: set[str], use_inotify: bool = True, not_after_ns: int | None = None) -> None:
        """``not_after_ns``: a file modified after this wall-clock time counts as changed
        already (it was written while the files were being read, e.g. imported)."""
        self.stamps: dict[str, Stamp | None] = {}
        self._seen: list[str] = []
        directories = {os.path.dirname(p) for p in paths}
        use_inotify = use_inotify and bool(paths) and inotify_sees_all(paths)
        # watch first, then stamp: a change in between is then an event, never missed
        self._inotify = _Inotify.watching(directories) if use_inotify else None
        for path in paths:
            self.stamps[path] = stamp(path)
        if not_after_ns is not None:  # (a future mtime is a skewed clock, not a change)
            now = time.time_ns()
            self._seen = sorted(
                p for p, st in self.stamps.items() if st is not None and not_after_ns < st[0] <= now
            )

    def filenos(self) -> list[int]:
        """The fds this holds (for a forked child to close)."""
        return [self._inotify.fd] if self._inotify is not None else []

    @property
    def watching(self) -> bool:
        return self._inotify is not None

    def changed(self, full: bool = False) -> list[str]:
        """The files whose mtime or size differs from when they were stamped (sorted).
        ``full``: compare every file even if inotify saw nothing (a safety net off the hot path)."""
        if self._inotify is not None and not self._inotify.happened() and not self._seen and not full:
            return []
        # read the events, then compare: a change after this point is a new event; once a
        # change was seen, it stays (its events are gone)
        now = {path for path, before in self.stamps.items() if stamp(path) != before}
        self._seen = sorted(now | set(self._seen))
        return self._seen

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
