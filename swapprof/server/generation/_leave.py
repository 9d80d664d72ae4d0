"""How a generation process ends: what an interpreter exit must do, then ``os._exit``.

The interpreter's own teardown frees every module, class and object one by one. For a FastAPI
worker that is ~100 ms of CPU and wall time per process (measured: ``os._exit`` after the same
imports takes ~5 ms), spent by the retiring workers of every upgrade at the moment the new ones
take over the connections; in a forked worker it also copies every page it shares with the
zygote. What an exit must still do is done first, in the order ``Py_FinalizeEx`` does it: wait
for non-daemon threads (``threading``'s shutdown, which also joins executor pools), run the
atexit handlers (the app's own OpenTelemetry flushes its last spans there, ``logging`` its
handlers), flush the standard streams.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_UNCAUGHT = 70
"""The exit code when ``run`` raised (EX_SOFTWARE); its traceback is printed first."""


def run_then_leave(run: Callable[[], int | None]) -> NoReturn:
    """Run ``run`` to its end, then leave the process as described above, with its code."""
    code = EXIT_UNCAUGHT
    try:
        code = run() or 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)  # as the interpreter would
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            _finish()
        finally:
            os._exit(code)


def _finish() -> None:
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # what Py_FinalizeEx calls first
    if shutdown is not None:
        with contextlib.suppress(Exception):
            shutdown()
    atexit._run_exitfuncs()  # a handler's error is printed, not raised
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
