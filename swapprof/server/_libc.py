"""The C library, loaded once, for the Linux calls Python's ``os`` lacks (prctl, inotify, statfs)."""

from __future__ import annotations

import ctypes

libc = ctypes.CDLL(None, use_errno=True)
