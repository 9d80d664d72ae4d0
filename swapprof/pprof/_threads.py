"""The ``goroutine`` profile: every thread and every pending asyncio task with its await stack.

A task's stack is its await chain, outermost coroutine first: ``cr_await``/``gi_yieldfrom``
are followed down to the awaited future, on every event loop of the process.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from types import FrameType
from typing import Any

from swapprof.pprof._frames import MAX_DEPTH, CodeNames, frames_of, raw_stack
from swapprof.pprof._model import Profile, Stack


def pending_tasks() -> list[asyncio.Task[Any]]:
    """Pending tasks of all event loops (read from another thread, so retried if it changes)."""
    registry = getattr(asyncio.tasks, "_all_tasks", None)
    for _attempt in range(100):
        try:
            tasks = list(registry) if registry is not None else []
        except RuntimeError:  # the set changed while we copied it
            continue
        return [t for t in tasks if isinstance(t, asyncio.Task) and not t.done()]
    return []


def await_chain(task: asyncio.Task[Any]) -> tuple[list[FrameType], str]:
    """Frames of the task's await chain (outermost first) and what the innermost one awaits."""
    frames: list[FrameType] = []
    node: object = task.get_coro()
    while node is not None and len(frames) < MAX_DEPTH:
        frame = _first_attr(node, ("cr_frame", "gi_frame", "ag_frame"))
        if not isinstance(frame, FrameType):
            break  # a future or other awaitable: the end of the chain
        frames.append(frame)
        node = _first_attr(node, ("cr_await", "gi_yieldfrom", "ag_await"))
    return frames, "" if node is None else _short(repr(node))


def _first_attr(node: object, names: tuple[str, ...]) -> object:
    for name in names:
        value = getattr(node, name, None)
        if value is not None:
            return value
    return None


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def goroutine_profile() -> Profile:
    """Threads and pending tasks as a ``goroutine/count`` profile (tasks grouped by stack)."""
    profile = Profile([("goroutine", "count")], ("goroutine", "count"), 1, time_nanos=time.time_ns())
    names = CodeNames()
    threads = {t.ident: t for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        thread = threads.get(ident)
        labels = (
            ("kind", "thread"),
            ("thread_id", str(thread.native_id if thread else ident)),
            ("thread_name", thread.name if thread else "?"),
        )
        profile.add(names.stack(raw_stack(frame)), [1], labels)
    for task in pending_tasks():
        frames, _awaiting = await_chain(task)
        profile.add(frames_of(frames[::-1], names), [1], (("kind", "asyncio_task"),))
    return profile


def _frame_lines(stack: Stack) -> list[str]:
    return [f"{name}(...)\n\t{filename}:{line}" for name, filename, _first, line in stack]


def goroutine_dump() -> str:
    """Every thread and task, innermost frame first, like Go's ``goroutine?debug=2``."""
    names = CodeNames()
    threads = {t.ident: t for t in threading.enumerate()}
    blocks = []
    for ident, frame in sys._current_frames().items():
        thread = threads.get(ident)
        title = f'thread {thread.native_id} "{thread.name}"' if thread else f"thread ident {ident}"
        flags = " [daemon]" if thread is not None and thread.daemon else ""
        blocks.append("\n".join([f"{title}{flags}:", *_frame_lines(names.stack(raw_stack(frame)))]))
    tasks = pending_tasks()
    for task in tasks:
        frames, awaiting = await_chain(task)
        waiter = getattr(task, "_fut_waiter", None)  # the future the task sleeps on, if any
        awaiting = _short(repr(waiter)) if waiter is not None else awaiting
        state = f"awaiting {awaiting}" if awaiting else "running or ready"
        title = f'asyncio task "{task.get_name()}" [{state}]:'
        blocks.append("\n".join([title, *_frame_lines(frames_of(frames[::-1], names))]))
    head = f"goroutine dump: {len(blocks) - len(tasks)} threads, {len(tasks)} asyncio tasks\n\n"
    return head + "\n\n".join(blocks) + "\n"
