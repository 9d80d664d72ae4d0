"""The bench's progress on stderr: a redrawn bar on a terminal, one line per step in CI logs."""

from __future__ import annotations

import sys
from typing import TextIO

WIDTH = 24


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(1, total)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.done = 0

    def _bar(self) -> str:
        filled = round(WIDTH * self.done / self.total)
        return "[" + "#" * filled + "-" * (WIDTH - filled) + f"] {self.done}/{self.total}"

    def note(self, text: str) -> None:
        """A line of its own (the bar, if any, is redrawn below it on the next step)."""
        if self.enabled:
            end = "\r\x1b[K" if self.tty else ""
            print(f"{end}swapprof bench: {text}", file=self.stream, flush=True)

    def step(self, status: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.tty:
            print(f"\r\x1b[K{self._bar()} {status}", end="", file=self.stream, flush=True)
        else:
            print(f"swapprof bench: upgrade {self.done}/{self.total} {status}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and self.done:
            print(file=self.stream, flush=True)
