"""Small helpers shared by the server tests."""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float = 30.0, what: str | Callable[[], str] = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned), or fail at the deadline;
    ``what`` names the condition (a callable: asked at the deadline, to say what was last seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def fd_targets(pid: int) -> dict[int, str]:
    """fd -> what it points at (sockets and pipes by inode); an fd closed while we look is skipped."""
    targets = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
    return targets


#: an opener that ignores *_proxy variables: the tests talk to 127.0.0.1 only
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``: (status, headers, body), for error statuses too."""
    try:
        with OPENER.open(urllib.request.Request(url, headers=headers or {}), timeout=60) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def require(binary: str, package: str) -> str:
    """The path of ``binary``; skip the test with the install line when it is missing, or fail
    under CI (where .ci/run installs it)."""
    path = shutil.which(binary)
    if path is None:
        reason = f"{binary} not installed (apt-get install -y {package}); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI must not skip this test")
        pytest.skip(reason)
    return path


def serving_pids(server: Any) -> dict[int, int]:
    """Worker index -> pid of the serving generation's serving workers (``ctl status``)."""
    status = server.status()
    return {
        g["worker"]: g["pid"]
        for g in status["generations"]
        if g["generation"] == status["serving_generation"] and g["state"] == "serving"
    }
