"""The master's control socket: one JSON object per line, each way.

Requests: ``{"cmd": "status"}``, ``{"cmd": "upgrade", "wait": true}``, ``{"cmd": "stop"}``.
Answers carry ``"ok": true`` or ``"ok": false`` with ``"error"``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from swapprof._errors import ControlError, NotRunningError
from swapprof.server._rundir import RunDir

MAX_LINE = 1 << 20
UNIX_PATH_MAX = 107


def control_path(run_dir: str | os.PathLike[str]) -> Path:
    return RunDir(run_dir).control


def check_path_length(path: Path) -> None:
    if len(os.fsencode(str(path))) > UNIX_PATH_MAX:
        raise ControlError(
            f"control socket path {str(path)!r} is longer than {UNIX_PATH_MAX} bytes, "
            "the Unix socket limit; use a shorter --run-dir"
        )


def _connect(sock: socket.socket, path: Path, timeout: float | None) -> None:
    """Connect, retrying while the listener's backlog is full: a Unix socket answers EAGAIN at
    once then (a busy master, a flood of other clients), where TCP would queue the SYN."""
    deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
    pause = 0.001
    while True:
        try:
            sock.connect(str(path))
            return
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotRunningError(f"no swapprof master answers at {path} ({exc.strerror})") from None
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                raise TimeoutError from None
            time.sleep(pause)  # a retry pause, not synchronisation: the backlog drains meanwhile
            pause = min(0.05, pause * 2)


def request(
    run_dir: str | os.PathLike[str], payload: dict[str, Any], timeout: float | None = 10.0
) -> dict[str, Any]:
    """Send one request to the master in ``run_dir`` and return its answer."""
    path = control_path(run_dir)
    check_path_length(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        _connect(sock, path, timeout)
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_LINE:
                raise ControlError("answer from the master is too long")
    except TimeoutError:
        raise ControlError(f"the master at {path} did not answer within {timeout} s") from None
    except OSError as exc:
        raise ControlError(f"control socket {path}: {exc}") from exc
    finally:
        sock.close()
    if not data:
        raise ControlError("the master closed the control connection without an answer")
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError(f"malformed answer from the master: {data[:200]!r}") from None
    if not isinstance(answer, dict):
        raise ControlError(f"malformed answer from the master: {data[:200]!r}")
    if not answer.get("ok", False):
        raise ControlError(str(answer.get("error", "the master refused the request")))
    return answer
