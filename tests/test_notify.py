from __future__ import annotations

import os
import secrets
import subprocess
import sys

from swapprof.server._notify import Notifier, decode, encode, receiver


def test_encode_decode_round_trip() -> None:
    fields = {"READY": 1, "STATUS": "serving gen=3", "SWAPPROF_T": 123}
    assert decode(encode(fields)) == {"READY": "1", "STATUS": "serving gen=3", "SWAPPROF_T": "123"}
    assert decode(b"garbage\nA=b=c\n") == {"A": "b=c"}


def test_abstract_socket_round_trip() -> None:
    name = f"@swapprof-test/{os.getpid()}/{secrets.token_hex(4)}"
    sock = receiver(name)
    notifier = Notifier(name)
    try:
        assert notifier.send(READY=1, STATUS="ok")
        assert decode(sock.recv(4096)) == {"READY": "1", "STATUS": "ok"}
    finally:
        notifier.close()
        sock.close()


def test_notifier_without_socket_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.send(READY=1) is False


def test_dead_receiver_is_not_an_error() -> None:
    notifier = Notifier(f"@swapprof-test/nobody/{secrets.token_hex(4)}")
    assert notifier.send(READY=1) is False
    notifier.close()


def test_a_generation_nobody_listens_for_exits_instead_of_serving() -> None:
    """A generation whose master gave it up (its notify socket is gone) must not serve."""
    env = {
        **os.environ,
        "NOTIFY_SOCKET": f"@swapprof-test-nobody-{os.getpid()}-{secrets.token_hex(4)}",
        "SWAPPROF_APP": "swapprof.server.demo:app",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "swapprof.server.generation"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 7, proc.stderr
    assert b"no master listens on NOTIFY_SOCKET" in proc.stderr
