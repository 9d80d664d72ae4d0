"""Live Python frames to profile frames: (co_qualname, absolute filename, co_firstlineno, line)."""

from __future__ import annotations

import os
from types import CodeType, FrameType

from swapprof.pprof._model import Frame, Stack

MAX_DEPTH = 512


class CodeNames:
    """Cache of code object -> (qualified name, absolute filename, first line).

    A cache lives as long as one profile; it keeps the code objects alive only that long.
    """

    def __init__(self) -> None:
        self._cache: dict[CodeType, tuple[str, str, int]] = {}

    def info(self, code: CodeType) -> tuple[str, str, int]:
        found = self._cache.get(code)
        if found is None:
            filename = code.co_filename
            if filename and not filename.startswith("<") and not os.path.isabs(filename):
                filename = os.path.abspath(filename)
            found = self._cache[code] = (code.co_qualname, filename, code.co_firstlineno)
        return found

    def frame(self, code: CodeType, line: int | None) -> Frame:
        name, filename, first = self.info(code)
        return (name, filename, first, line or first)

    def stack(self, raw: tuple[object, ...]) -> Stack:
        """Turn a ``raw_stack`` tuple (code, line, code, line, ...) into a Stack."""
        frames = []
        for index in range(0, len(raw), 2):
            code, line = raw[index], raw[index + 1]
            assert isinstance(code, CodeType)
            frames.append(self.frame(code, line if isinstance(line, int) else None))
        return tuple(frames)


def raw_stack(frame: FrameType | None) -> tuple[object, ...]:
    """The cheapest hashable form of a live stack, leaf first: (code, line, code, line, ...)."""
    out: list[object] = []
    depth = 0
    while frame is not None and depth < MAX_DEPTH:
        out.append(frame.f_code)
        out.append(frame.f_lineno)
        frame = frame.f_back
        depth += 1
    return tuple(out)


def frames_of(frames: list[FrameType], names: CodeNames) -> Stack:
    """Stack of explicit frames given leaf first (asyncio await chains)."""
    return tuple(names.frame(f.f_code, f.f_lineno) for f in frames)
