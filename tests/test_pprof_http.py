"""The standalone debug server over real sockets: Go's routes, statuses, headers and messages."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from swapprof._errors import ConfigError
from swapprof.pprof import PprofServer, _cpu, read_profile, serve
from tests._helpers import http_get as get
from tests._helpers import wait_for

GO_ERROR = {"Content-Type": "text/plain; charset=utf-8", "X-Go-Pprof": "1"}


def swapprof_test_waiting_task_body(ready: threading.Event) -> Callable[[], object]:
    async def swapprof_test_waiting_task(done: asyncio.Event) -> None:
        asyncio.get_running_loop().call_soon(ready.set)  # runs once the task has suspended
        await done.wait()

    return swapprof_test_waiting_task


@pytest.fixture
def server() -> Iterator[PprofServer]:
    with serve(max_seconds=5, routes={"upgrades": lambda: {"count": 2}, "broken": lambda: 1 / 0}) as running:
        yield running


def url_of(server: PprofServer, path: str) -> str:
    host, port = server.address
    return f"http://{host}:{port}{path}"


def test_binds_loopback_on_a_free_port(server: PprofServer) -> None:
    assert server.address[0] == "127.0.0.1" and server.address[1] > 0
    assert server.url.endswith("/debug/pprof/")


def test_index_and_text_routes(server: PprofServer) -> None:
    status, headers, body = get(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    for link in ("heap?debug=1", "goroutine?debug=2", "profile?debug=1", "../swapprof/upgrades"):
        assert link.encode() in body
    status, _headers, body = get(url_of(server, "/debug/pprof"))  # redirected to the slash
    assert status == 200 and b"Profile Descriptions" in body
    status, headers, body = get(url_of(server, "/debug/pprof/cmdline"))
    assert status == 200 and headers["Content-Type"] == "text/plain; charset=utf-8" and b"\x00" in body
    assert get(url_of(server, "/debug/pprof/symbol"))[2] == b"num_symbols: 1\n"


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/debug/pprof/nonesuch", 404, "Unknown profile"),
        ("/debug/pprof/trace", 501, "Could not enable tracing"),
        ("/debug/pprof/heap", 501, "SWAPPROF_TRACEMALLOC=1"),
        ("/debug/pprof/heap?seconds=abc", 400, 'invalid value for "seconds" - must be a positive integer'),
        ("/debug/pprof/allocs?seconds=0", 400, 'invalid value for "seconds"'),
        ("/debug/pprof/goroutine?seconds=-3", 400, 'invalid value for "seconds"'),
        ("/debug/pprof/heap?seconds=1&debug=1", 400, "seconds and debug params are incompatible"),
        ("/debug/pprof/block?seconds=6", 400, "exceeds the server's maximum of 5 seconds"),
        ("/debug/pprof/profile?seconds=6", 400, "exceeds the server's maximum of 5 seconds"),
        ("/debug/pprof/profile?seconds=1&backend=gprof", 400, "unknown backend 'gprof'"),
        ("/debug/pprof/profile?seconds=1&mode=sideways", 400, "unknown profiling mode 'sideways'"),
        ("/debug/swapprof/nonesuch", 404, "Unknown route"),
        ("/debug/swapprof/broken", 500, "ZeroDivisionError"),
        ("/elsewhere", 404, "Not Found"),
    ],
)
def test_errors_have_go_status_and_headers(server: PprofServer, path: str, status: int, message: str) -> None:
    got, headers, body = get(url_of(server, path))
    assert got == status, body
    assert message in body.decode()
    assert {k: headers.get(k) for k in GO_ERROR} == GO_ERROR
    assert "Content-Disposition" not in headers


@pytest.mark.parametrize("name", ["block", "mutex", "threadcreate", "goroutine"])
def test_named_profiles_are_attachments(server: PprofServer, name: str) -> None:
    status, headers, body = get(url_of(server, f"/debug/pprof/{name}?debug=abc"))  # bad debug = 0, as Go
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    profile = read_profile(body)
    expected = {
        "block": [("contentions", "count"), ("delay", "nanoseconds")],
        "mutex": [("contentions", "count"), ("delay", "nanoseconds")],
        "threadcreate": [("threadcreate", "count")],
        "goroutine": [("goroutine", "count")],
    }[name]
    assert profile.sample_types == expected
    assert bool(profile.samples) == (name == "goroutine")


def test_goroutine_lists_threads_and_asyncio_tasks(server: PprofServer) -> None:
    ready = threading.Event()
    task_fn = swapprof_test_waiting_task_body(ready)
    loop = asyncio.new_event_loop()
    done = asyncio.Event()

    def run_loop() -> None:
        loop.run_until_complete(task_fn(done))

    worker = threading.Thread(target=run_loop, name="swapprof-test-loop")
    worker.start()
    try:
        assert ready.wait(10)
        dump = get(url_of(server, "/debug/pprof/goroutine?debug=2"))[2].decode()
        assert '"swapprof-test-loop"' in dump
        assert "asyncio task" in dump and "swapprof_test_waiting_task" in dump
        assert "awaiting <Future pending" in dump
        grouped = get(url_of(server, "/debug/pprof/goroutine?debug=1"))[2].decode()
        assert grouped.startswith("goroutine profile: total ") and "kind=asyncio_task" in grouped
        profile = read_profile(get(url_of(server, "/debug/pprof/goroutine"))[2])
        names = {frame[0] for stack, _labels in profile.samples for frame in stack}
        assert "swapprof_test_waiting_task_body.<locals>.swapprof_test_waiting_task" in names
    finally:
        loop.call_soon_threadsafe(done.set)
        worker.join()
        loop.close()


def test_json_routes(server: PprofServer) -> None:
    status, headers, body = get(url_of(server, "/debug/swapprof/upgrades"))
    assert (status, headers["Content-Type"], body.replace(b" ", b"").replace(b"\n", b"")) == (
        200,
        "application/json",
        b'{"count":2}',
    )
    assert b'"upgrades"' in get(url_of(server, "/debug/swapprof/"))[2]


def test_routes_added_later(server: PprofServer) -> None:
    server.add_route("late", lambda: {"answer": 42})
    server.add_route("upgrades", lambda: {"count": 3})  # replaces the first one
    assert b'"answer": 42' in get(url_of(server, "/debug/swapprof/late"))[2]
    assert b'"count": 3' in get(url_of(server, "/debug/swapprof/upgrades"))[2]
    with pytest.raises(ConfigError):
        server.add_route("no/slashes", dict)


def test_token_is_enforced() -> None:
    with serve(token="s3cret", routes={"gc": lambda: []}) as guarded:
        for path in ("/debug/pprof/", "/debug/pprof/cmdline", "/debug/swapprof/gc"):
            status, headers, body = get(url_of(guarded, path))
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
            assert headers["X-Go-Pprof"] == "1" and b"Authorization: Bearer" in body
            assert get(url_of(guarded, path), {"Authorization": "Bearer wrong"})[0] == 401
            assert get(url_of(guarded, path), {"Authorization": "Bearer s3cret"})[0] == 200


def test_heap_and_delta_with_tracemalloc_on() -> None:
    assert not tracemalloc.is_tracing()
    with serve(tracemalloc=8) as traced:
        assert tracemalloc.is_tracing()
        status, headers, body = get(url_of(traced, "/debug/pprof/heap?gc=1"))
        assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="heap"'
        heap = read_profile(body)
        assert heap.sample_types == [("inuse_objects", "count"), ("inuse_space", "bytes")]
        assert heap.totals()[1] > 0
        text = get(url_of(traced, "/debug/pprof/heap?debug=1"))[2].decode()
        assert text.startswith("heap profile: total ")
    assert not tracemalloc.is_tracing()  # stop() undid what serve(tracemalloc=...) did


def test_delta_profile_starts_and_stops_tracemalloc(server: PprofServer) -> None:
    status, headers, body = get(url_of(server, "/debug/pprof/allocs?seconds=1"))
    assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="allocs-delta"'
    delta = read_profile(body)
    assert [kind for kind, _unit in delta.sample_types] == [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
    ]
    assert delta.default_sample_type == "alloc_space"
    assert not tracemalloc.is_tracing()
    block = get(url_of(server, "/debug/pprof/block?seconds=1"))
    assert block[0] == 200 and block[1]["Content-Disposition"] == 'attachment; filename="block-delta"'


def test_invalid_seconds_fall_back_to_default_capped_by_maximum() -> None:
    with serve(max_seconds=1) as short:
        status, headers, body = get(url_of(short, "/debug/pprof/profile?seconds=soon"))
        assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="profile"'
        profile = read_profile(body)
        assert profile.sample_types == [("samples", "count"), ("cpu", "nanoseconds")]
        assert profile.period == 10_000_000 and profile.period_type == ("cpu", "nanoseconds")


def _start_raw_profile(server: PprofServer, seconds: int) -> socket.socket:
    client = socket.create_connection(server.address)
    client.sendall(f"GET /debug/pprof/profile?seconds={seconds} HTTP/1.0\r\n\r\n".encode())
    wait_for(_cpu.in_use, 15)
    return client


def test_second_cpu_profile_is_refused_and_others_still_answer(server: PprofServer) -> None:
    first = _start_raw_profile(server, 5)
    try:
        status, headers, body = get(url_of(server, "/debug/pprof/profile?seconds=1"))
        assert status == 500 and headers["X-Go-Pprof"] == "1"
        assert body == b"Could not enable CPU profiling: cpu profiling already in use\n"
        busy = get(url_of(server, "/debug/pprof/profile?seconds=1&backend=py-spy"))
        assert busy[0] in (500, 501) and b"Could not enable CPU profiling" in busy[2]
        assert get(url_of(server, "/debug/pprof/cmdline"))[0] == 200  # not blocked by the profile
        assert get(url_of(server, "/debug/pprof/goroutine"))[0] == 200
        assert _cpu.in_use()
    finally:
        first.close()
    wait_for(lambda: not _cpu.in_use(), 15)  # the disconnect stopped the sampler long before 5 s


def test_disconnect_stops_a_long_profile(server: PprofServer) -> None:
    started = time.monotonic()
    _start_raw_profile(server, 5).close()
    wait_for(lambda: not _cpu.in_use(), 15)
    assert time.monotonic() - started < 60  # generous: what matters is that it ended at all


def test_stop_ends_a_running_profile() -> None:
    running = serve(max_seconds=60)
    client = _start_raw_profile(running, 60)
    try:
        running.stop()
        assert not _cpu.in_use()
    finally:
        client.close()


def test_timed_profile_requests_are_capped_with_429_and_retry_after(server: PprofServer) -> None:
    from swapprof.pprof._slots import MAX_TIMED_REQUESTS

    host, port = server.address
    holders = []
    try:
        # one more held request than there are slots: whatever order their threads start in,
        # the cap is met by held requests and exactly one of them is refused at once (polling
        # with a timed request of our own raced them for the slots on a loaded machine)
        for _ in range(MAX_TIMED_REQUESTS + 1):
            held = socket.create_connection((host, port))
            held.sendall(b"GET /debug/pprof/goroutine?seconds=5 HTTP/1.1\r\nHost: t\r\n\r\n")
            holders.append(held)
        refused = wait_for(
            lambda: next(iter(select.select(holders, [], [], 0.05)[0]), None), 10, "a held request refused"
        )
        assert refused.recv(4096).split(b"\r\n", 1)[0].endswith(b" 429 Too Many Requests")
        holders.remove(refused)
        refused.close()
        answer = get(url_of(server, "/debug/pprof/heap?seconds=1"))
        assert answer[0] == 429, answer[:2]
        _, headers, body = answer
        assert 1 <= int(headers["Retry-After"]) <= 5
        assert f"{MAX_TIMED_REQUESTS} timed profile requests are running".encode() in body
        assert (
            get(url_of(server, "/debug/pprof/heap?seconds=%2B1"))[0] == 429
        )  # "+1", as the handlers read it
        assert get(url_of(server, "/debug/pprof/goroutine?debug=1"))[0] == 200  # untimed: never capped
    finally:
        for held in holders:
            held.close()
    # a gone client frees its slot
    wait_for(lambda: get(url_of(server, "/debug/pprof/heap?seconds=1"))[0] == 200, 15)
