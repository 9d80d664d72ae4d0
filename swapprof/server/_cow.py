"""Copy-on-write ahead: the pages a forked generation copies from its zygote, copied by the spare.

A process forked from the zygote shares the zygote's memory until it writes to it; the first
write to each page (a reference count is enough) copies the page, a fault that costs several
microseconds. A Django site's import in a forked generation makes ~2,400 of them (~10 ms of its
~30 ms ``import`` phase on a 2-core VM; the same import without a fork faults ~80 times). Which
pages a generation copies is nearly the same every time for one zygote -- the zygote's memory
does not move -- so:

- a generation forked from a zygote (worker 0, in a thread after READY) lists the pages of its
  private anonymous mappings that are now its own (``/proc/self/pagemap``: present and
  exclusively mapped) and writes them to ``RUN_DIR/handoff/pages-Z.json`` (Z: the zygote's pid);
- a spare of that zygote, after warming, asks the kernel to copy those of them it still shares
  (``madvise(MADV_POPULATE_WRITE)``, Linux 5.14: "as if writing to each page", the contents
  unchanged), so the generation it becomes does not fault on them on the critical path.

The contents never change (no byte is written by us), so a wrong or stale list costs only
memory or time, never correctness: a page no longer mapped, or not writable, is refused by the
kernel and skipped. The cost: the waiting spare holds, ahead, the pages the generation it becomes
would have copied anyway.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
from collections.abc import Callable, Iterator

from swapprof.server._libc import libc

PAGE = os.sysconf("SC_PAGE_SIZE")
MADV_POPULATE_WRITE = 23
EINVAL = 22
Runs = list[tuple[int, int]]  # (first page's address, pages), in address order

# A pagemap entry's top byte holds bit 63 (present: 0x80) and bit 56 (exclusively mapped: 0x01);
# each table maps that byte to b"1" when the page is wanted, so runs are found at C speed.
_OWN = bytes(0x31 if b & 0x81 == 0x81 else 0x30 for b in range(256))
_SHARED = bytes(0x31 if b & 0x81 == 0x80 else 0x30 for b in range(256))

report_to: str | None = None
"""Set by the zygote in a forked generation: where that generation lists its copied pages."""


def _anonymous_private() -> list[tuple[int, int]]:
    """(start, end) of this process's writable private anonymous mappings (the heap among them)."""
    found = []
    with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
        for line in maps:
            fields = line.split()
            perms, name = fields[1], (fields[5] if len(fields) > 5 else "")
            if perms.startswith("rw") and perms[3] == "p" and name in ("", "[heap]"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                found.append((start, end))
    return found


def _pages(table: bytes) -> Runs:
    runs: Runs = []
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for start, end in _anonymous_private():
            data = os.pread(fd, (end - start) // PAGE * 8, start // PAGE * 8)
            flags = data[7::8].translate(table)
            runs.extend((start + m.start() * PAGE, m.end() - m.start()) for m in re.finditer(b"1+", flags))
    finally:
        os.close(fd)
    return runs


def copied() -> Runs:
    """The pages of this process's private anonymous memory that are its own (not shared)."""
    return _pages(_OWN)


def report(path: str) -> int:
    """Write ``copied()`` to ``path`` (atomically); return how many pages it lists."""
    runs = copied()
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "runs": runs}, f, separators=(",", ":"))
    os.replace(tmp, path)
    return sum(n for _, n in runs)


def read(path: str) -> Runs:
    """The runs in a report, in address order (``[]`` when there is none, or it is unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            runs = json.load(f).get("runs", [])
        return sorted((int(start), int(n)) for start, n in runs)
    except (OSError, ValueError, TypeError, AttributeError):
        return []


def _overlap(a: Runs, b: Runs) -> Iterator[tuple[int, int]]:
    """(start, end) addresses of what two address-ordered lists of runs have in common."""
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        a_end, b_end = a[i][0] + a[i][1] * PAGE, b[j][0] + b[j][1] * PAGE
        if start < min(a_end, b_end):
            yield start, min(a_end, b_end)
        if a_end <= b_end:
            i += 1
        else:
            j += 1


def populate(runs: Runs, stop: Callable[[], bool] = lambda: False) -> int:
    """Copy now the pages of ``runs`` this process still shares; return how many were copied.
    ``stop()`` is asked between runs: true, the rest is left (say, the spare is wanted now)."""
    if not runs:
        return 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    done = 0
    for start, end in _overlap(runs, _pages(_SHARED)):
        if stop():
            break
        if madvise(start, end - start, MADV_POPULATE_WRITE) == 0:
            done += (end - start) // PAGE
        elif ctypes.get_errno() == EINVAL:  # a kernel older than 5.14
            break
    return done
