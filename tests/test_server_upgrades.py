"""Hot upgrades of the reference server under real load: real processes, sockets, signals."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

from swapprof._vocabulary import PHASES
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.testing import ServerProcess
from tests._helpers import fd_targets, wait_for


def _master_fds(server: ServerProcess) -> int:
    """The master's open fds, counted by the master itself while it answers (one control
    connection open), so a closing control connection from the last request cannot skew it."""
    count: int = server.status()["master_fds"]
    return count


def _serving(status: dict) -> dict:  # type: ignore[type-arg]
    return next(g for g in status["generations"] if g["state"] == "serving")


def test_twenty_upgrades_under_load_lose_no_request() -> None:
    with ServerProcess() as server:
        loads = [
            LoadGenerator(
                server.address, concurrency=3, mode="keepalive", paths=[("/", 8), ("/slow?ms=300", 1)]
            ),
            LoadGenerator(server.address, concurrency=2, mode="new", paths=[("/", 4), ("/slow?ms=200", 1)]),
        ]
        for load in loads:
            load.start()
        try:
            records = []
            fds_after_first = None
            for _ in range(20):
                records.append(server.upgrade())
                if fds_after_first is None:
                    fds_after_first = _master_fds(server)
            fds_after_last = _master_fds(server)
            status = server.status()
        finally:
            results = [r for load in loads for r in load.stop()]
    assert [r["outcome"] for r in records] == ["success"] * 20, [r["detail"] for r in records]
    assert [r["new_generation"] for r in records] == list(range(2, 22))
    assert status["master_pid"] == server.pid
    assert fds_after_last == fds_after_first
    assert len(status["generations"]) == 1 and _serving(status)["generation"] == 21
    assert error_counts(results) == {k: 0 for k in error_counts([])}, error_counts(results)
    slow_spanning = [r for r in results if r.path.startswith("/slow") and r.status == 200]
    assert len(slow_spanning) > 20
    answered = {r.generation for r in results}
    assert len(answered - {None}) >= 15  # load reached most generations, not just the last
    for record in records:
        assert set(record["phases_ms"]) == {
            "requested",
            "spawn",
            "import",
            "ready",
            "switch",
            "drain",
            "exit",
        }
        assert record["service_gap_ms"] == 0
        assert record["time_to_ready_ms"] <= record["upgrade_total_ms"]
        assert set(record["phases_ms"]) <= set(PHASES)


def test_fd_count_of_the_master_is_stable_over_fifty_upgrades() -> None:
    with ServerProcess(args=["--drain-grace", "0.05"]) as server:
        server.upgrade()
        after_one = _master_fds(server)
        for _ in range(49):
            assert server.upgrade()["outcome"] == "success"
        assert _master_fds(server) == after_one
        assert server.status()["serving_generation"] == 51


def test_generation_inherits_only_its_listeners() -> None:
    with ServerProcess(bind=("127.0.0.1:0", "[::1]:0")) as server:
        gen_pid = _serving(server.status())["pid"]
        master_targets = set(fd_targets(server.pid).values())
        gen_targets = fd_targets(gen_pid)
        listener_targets = {gen_targets[3], gen_targets[4]}
        with open(f"/proc/{gen_pid}/environ", "rb") as fh:
            env = dict(item.split(b"=", 1) for item in fh.read().split(b"\0") if b"=" in item)
    assert env[b"LISTEN_FDS"] == b"2" and env[b"LISTEN_PID"] == str(gen_pid).encode()
    assert env[b"LISTEN_FDNAMES"] == b"http:http"
    # anon_inode names (epoll, pidfd) and paths (uvloop's libuv opens /dev/null itself) do not
    # identify an object; sockets and pipes do, by inode
    shared = {
        fd: t
        for fd, t in gen_targets.items()
        if fd > 2 and t in master_targets and t.startswith(("socket:", "pipe:"))
    }
    assert set(shared.values()) == listener_targets, (
        f"generation holds master fds beyond its listeners: {shared}"
    )


def test_ipv6_and_unix_listeners_are_served_across_an_upgrade(tmp_path: Path) -> None:
    uds = tmp_path / "app.sock"
    with ServerProcess(bind=("[::1]:0",), args=["--uds", str(uds)]) as server:
        addresses = server.state["addresses"]
        assert addresses[0].startswith("[::1]:") and addresses[1] == f"unix:{uds}"
        record = server.upgrade()
        assert record["outcome"] == "success"
        for address in addresses:
            results = asyncio.run(LoadGenerator(address, concurrency=1, max_requests=5).run())
            assert len(results) == 5
            assert all(r.status == 200 and r.generation == 2 for r in results)
    assert not uds.exists()


def test_signal_storm_coalesces_into_one_follow_up() -> None:
    with ServerProcess() as server:
        for _ in range(10):
            server.signal(signal.SIGHUP)
            time.sleep(0.01)
        records = wait_for(lambda: _records(server, 2), what="two upgrades in upgrades.jsonl")
        time.sleep(0.5)  # nothing else may follow: the storm made exactly two upgrades
        records = _records(server, 0)
        status = server.status()
    assert len(records) == 2, records
    assert [r["outcome"] for r in records] == ["success", "success"]
    assert records[1]["coalesced"] == 8  # 1 started, 1 follow-up, 8 absorbed
    assert status["coalesced_total"] == 8
    assert status["serving_generation"] == 3
    assert [g["generation"] for g in status["generations"]] == [3]


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and Content-Length body) from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            v
            for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
            if k.lower() == b"content-length"
        )
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed mid-body"
        body += chunk
    return head + b"\r\n\r\n" + body


def _records(server: ServerProcess, at_least: int) -> list:  # type: ignore[type-arg]
    path = server.run_dir / "upgrades.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return records if len(records) >= at_least else []


def test_draining_generation_closes_busy_keepalive_with_header_and_idle_at_grace_end() -> None:
    with ServerProcess(args=["--drain-grace", "1.5", "--drain-timeout", "10"]) as server:
        host, port = server.address.rsplit(":", 1)
        busy = socket.create_connection((host, int(port)))
        idle = socket.create_connection((host, int(port)))
        busy.settimeout(10)
        idle.settimeout(10)
        try:
            busy.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b'"generation": 1' in _response(busy)
            idle.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b'"generation": 1' in _response(idle)
            server.ctl("upgrade")
            wait_for(
                lambda: any(g["state"] == "draining" for g in server.status()["generations"]), what="drain"
            )
            switched = time.monotonic()
            busy.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            answer = _response(busy).lower()
            assert b'"generation": 1' in answer and b"connection: close" in answer
            assert busy.recv(4096) == b""  # closed after that response
            assert idle.recv(4096) == b""  # idle all through the grace window: closed at its end
            assert time.monotonic() - switched >= 1.0
        finally:
            busy.close()
            idle.close()
        record = wait_for(lambda: _records(server, 1), what="upgrade record")[0]
    assert record["outcome"] == "success" and record["closed_idle"] >= 1
    assert record["connections_at_switch"] >= 2
