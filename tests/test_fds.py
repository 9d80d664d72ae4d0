from __future__ import annotations

import os
import socket

import pytest

from swapprof import ConfigError, ListenerError
from swapprof.server._fds import bind, describe, inherit, parse_bind, probe_address


@pytest.mark.parametrize(
    ("text", "family", "host", "port"),
    [
        ("127.0.0.1:0", socket.AF_INET, "127.0.0.1", 0),
        ("localhost:8080", socket.AF_INET, "127.0.0.1", 8080),
        ("[::1]:9000", socket.AF_INET6, "::1", 9000),
        ("0.0.0.0:80", socket.AF_INET, "0.0.0.0", 80),
    ],
)
def test_parse_bind_accepts(text: str, family: socket.AddressFamily, host: str, port: int) -> None:
    spec = parse_bind(text)
    assert (spec.family, spec.host, spec.port) == (family, host, port)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "expected HOST:PORT"),
        ("127.0.0.1:http", "is not a number"),
        ("127.0.0.1:70000", "outside 0-65535"),
        ("[::1]9000", "expected [IPV6]:PORT"),
        ("example.com:80", "not a numeric IP address"),
        ("unix:", "empty Unix socket path"),
    ],
)
def test_parse_bind_rejects_with_a_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_bind(text)


def test_bind_port_zero_reports_the_real_port() -> None:
    sock = bind(parse_bind("127.0.0.1:0"))
    try:
        assert not sock.get_inheritable()
        address = describe(sock)
        assert address.startswith("127.0.0.1:") and not address.endswith(":0")
        assert probe_address(sock) == (socket.AF_INET, ("127.0.0.1", sock.getsockname()[1]))
    finally:
        sock.close()


def test_bind_refuses_a_port_in_use() -> None:
    first = bind(parse_bind("127.0.0.1:0"))
    try:
        with pytest.raises(ListenerError, match=r"cannot listen on 127\.0\.0\.1:"):
            bind(parse_bind(describe(first)))
    finally:
        first.close()


def test_unix_socket_stale_file_is_replaced_but_a_live_one_is_not(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "s.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # file left behind, nobody listens
    live = bind(parse_bind(f"unix:{path}"))
    try:
        with pytest.raises(ListenerError, match="another process is listening"):
            bind(parse_bind(f"unix:{path}"))
    finally:
        live.close()
    regular = os.path.join(tmp_path, "file")
    open(regular, "w").close()
    with pytest.raises(ListenerError, match="not a socket"):
        bind(parse_bind(f"unix:{regular}"))


def test_inherit_ignores_fds_meant_for_another_pid() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDNAMES": "http"}
    assert inherit(env) is None
    assert env == {}  # consumed either way, so they are not passed on by accident


def test_inherit_rejects_garbage_count() -> None:
    with pytest.raises(ListenerError, match="not a number"):
        inherit({"LISTEN_FDS": "many", "LISTEN_PID": str(os.getpid())})
