"""The py-spy backend with the real py-spy binary (installed from PyPI into the venv).

py-spy reads this process with ptrace. Without the permission (no root, no CAP_SYS_PTRACE,
Yama ptrace_scope) the test is skipped with the reason, unless CI is set.
"""

from __future__ import annotations

import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapprof.pprof import PprofServer, ProfilerUnavailableError, cpu_profile, read_profile, serve
from swapprof.pprof._pyspy import convert, find_pyspy

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def swapprof_spy_busy_leaf(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * 3 for i in range(500))


@pytest.fixture
def busy() -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=swapprof_spy_busy_leaf, args=(stop,), name="spy-busy")
    thread.start()
    yield
    stop.set()
    thread.join()


@pytest.fixture
def server() -> Iterator[PprofServer]:
    with serve(max_seconds=5) as running:
        yield running


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_pyspy_backend_over_http(busy: None, server: PprofServer) -> None:
    try:
        find_pyspy()
    except ProfilerUnavailableError as exc:
        _skip_or_fail(str(exc))
    url = server.url + "profile?seconds=1&backend=py-spy"
    try:
        with OPENER.open(url, timeout=90) as answer:
            body, disposition = answer.read(), answer.headers["Content-Disposition"]
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        if exc.code == 501 and "may not trace" in text:
            _skip_or_fail(f"py-spy lacks ptrace permission here: {text.strip()}")
        raise AssertionError(f"{exc.code}: {text}") from None
    assert disposition == 'attachment; filename="profile"'
    profile = read_profile(body)
    assert profile.sample_types == [("samples", "count"), ("cpu", "nanoseconds")]
    assert profile.period == 10_000_000 and any("py-spy" in c for c in profile.comments)
    leaves = {stack[0][0] for stack, _labels in profile.samples if stack}
    names = {frame[0] for stack, _labels in profile.samples for frame in stack}
    assert "swapprof_spy_busy_leaf" in names, sorted(names)[:40]
    assert leaves  # native frames (libpython, libc) may sit below the Python ones
    labels = [dict(lab) for _stack, lab in profile.samples]
    assert {"pid", "thread_id", "thread_name"} <= set(labels[0])
    assert str(os.getpid()) in {lab["pid"] for lab in labels}
    assert "spy-busy" in {lab["thread_name"] for lab in labels}


def test_missing_pyspy_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProfilerUnavailableError, match=r"pip install 'swapprof\[pyspy\]'"):
        cpu_profile(1, backend="py-spy")
    with serve() as running, pytest.raises(urllib.error.HTTPError) as answer:
        OPENER.open(running.url + "profile?seconds=1&backend=py-spy", timeout=30)
    assert answer.value.code == 501
    assert b"pip install" in answer.value.read()


def test_speedscope_conversion() -> None:
    data = {
        "exporter": "py-spy@0.4.3",
        "shared": {
            "frames": [
                {"name": "leaf", "file": "/app/a.py", "line": 3},
                {"name": "Handler.run", "file": "/app/b.py", "line": 9},
                {"name": "0x7f00", "file": "/usr/lib/libc.so.6", "line": 0},
                {"name": "thread (12): worker", "file": "", "line": 0},
            ]
        },
        "profiles": [
            {
                "name": 'Process 10 Thread 12 "worker"',
                "samples": [[3, 2, 1, 0], [3, 2, 1, 0], [1]],
                "weights": [0.01, 0.01, 0.01],
            }
        ],
    }
    profile = convert(data, 100, "cpu")
    labels = (("pid", "10"), ("thread_id", "12"), ("thread_name", "worker"))
    leaf, caller, native = (
        ("leaf", "/app/a.py", 0, 3),
        ("Handler.run", "/app/b.py", 0, 9),
        ("0x7f00", "/usr/lib/libc.so.6", 0, 0),
    )
    assert profile.samples == {
        ((leaf, caller, native), labels): [2, 20_000_000],
        ((caller,), labels): [1, 10_000_000],
    }
