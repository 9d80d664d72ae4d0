"""The self-probe claims its own connection from the shared listener.

Two generations share one listener in one event loop here: the "old" one accepts through its
asyncio server, the "new" one probes. Accepting right after connect, before the loop turns,
the new one gets its own probe, and serves the real clients it accepted on the way instead of
dropping them.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
import warnings
from pathlib import Path

import pytest

from swapprof.server._fds import probe_address
from swapprof.server.generation._probe import CLAIM_TRIES, ProbeFailed, probe
from swapprof.server.generation._serving import GenerationServer
from tests._apps import ok_app

_app = ok_app


def _listener(family: socket.AddressFamily, tmp_path: Path) -> socket.socket:
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "l.sock") if family == socket.AF_UNIX else ("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    return listener


async def _answer(client: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\nok" not in data:
        chunk = await asyncio.wait_for(loop.sock_recv(client, 4096), 10)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNIX], ids=["tcp", "unix"])
def test_probe_claims_its_connection_ahead_of_the_old_generation(
    family: socket.AddressFamily, tmp_path: Path
) -> None:
    async def run() -> tuple[list[int], bytes]:
        listener = _listener(family, tmp_path)
        old = GenerationServer(_app, [listener], generation=1)
        new = GenerationServer(_app, [], generation=2)
        await old.start()
        await old.serve()
        await new.start()
        fam, address = probe_address(listener)
        attempts = []
        for _ in range(5):
            deadline = asyncio.get_running_loop().time() + 10
            attempts.append(
                await probe(fam, address, new.middleware.nonce, deadline, lambda p: new.claim(listener, p))
            )
        # a client queued before the probe: the claim accepts it first, and new serves it
        client = socket.socket(family, socket.SOCK_STREAM)
        client.connect(address)  # type: ignore[arg-type]
        client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        client.setblocking(False)
        assert new.claim(listener, [("nobody", 0)]) is None  # took the client, then found the queue empty
        answer = await _answer(client)
        client.close()
        for server in (old, new):
            await server.stop_accepting()
            await server.drain(0.0, 1.0)
            await server.shutdown_lifespan()
        listener.close()
        return attempts, answer

    attempts, answer = asyncio.run(run())
    # Without the claim the old server, polling first, answers every probe (next test). With it
    # the new one wins in the first try (one if the kernel deferred the handshake), never
    # falling back to plain probing.
    assert all(1 <= a < CLAIM_TRIES for a in attempts), attempts
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")


def test_probe_without_a_claim_can_land_on_the_old_generation(tmp_path: Path) -> None:
    """The race the claim removes: the old generation's answer (409) makes the probe retry."""

    async def run() -> int:
        listener = _listener(socket.AF_INET, tmp_path)
        old = GenerationServer(_app, [listener], generation=1)
        await old.start()
        await old.serve()
        fam, address = probe_address(listener)
        deadline = asyncio.get_running_loop().time() + 0.5
        try:
            return await probe(fam, address, "not-old's-nonce", deadline)
        finally:
            await old.stop_accepting()
            await old.drain(0.0, 1.0)
            await old.shutdown_lifespan()
            listener.close()

    with pytest.raises(ProbeFailed, match="no answer of our own"):
        asyncio.run(run())


def test_a_claim_on_an_inherited_blocking_listener_never_waits(tmp_path: Path) -> None:
    """Listeners arrive blocking (LISTEN_FDS); a claim that finds the queue empty (another
    process took the probe's connection) must return at once, not block the event loop."""

    async def run() -> tuple[bool, bool]:
        listener = _listener(socket.AF_INET, tmp_path)
        listener.setblocking(True)
        new = GenerationServer(_app, [listener], generation=2)
        await new.start()
        nonblocking = not listener.getblocking()
        listener.settimeout(5.0)  # blocking again (a regression would wait out these 5 s)
        began = time.monotonic()
        result = new.claim(listener, [("127.0.0.1", 1)]) is not None or time.monotonic() - began > 1.0
        await new.stop_accepting()
        await new.drain(0.0, 1.0)
        await new.shutdown_lifespan()
        listener.close()
        return nonblocking, result

    nonblocking, result = asyncio.run(asyncio.wait_for(run(), 30))
    assert nonblocking and result is False


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNIX], ids=["tcp", "unix"])
def test_lost_claims_close_every_connection_they_made(family: socket.AddressFamily, tmp_path: Path) -> None:
    """A try makes several connections; one the claim did not get is closed by the probe, not
    left to the garbage collector (a ResourceWarning, and an fd held until then)."""

    async def run() -> int:
        listener = _listener(family, tmp_path)
        new = GenerationServer(_app, [listener], generation=2)
        await new.start()
        lost = 0

        def claim(peers: object) -> object | None:
            nonlocal lost
            taken = new.claim(listener, peers)  # type: ignore[arg-type]
            if lost < 3:  # the first tries lose, as if another process had been faster
                lost += 1
                return None
            return taken

        fam, address = probe_address(listener)
        try:
            deadline = asyncio.get_running_loop().time() + 10
            return await probe(fam, address, new.middleware.nonce, deadline, claim)
        finally:
            await new.stop_accepting()
            await new.drain(0.0, 1.0)
            await new.shutdown_lifespan()
            listener.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        attempts = asyncio.run(run())
        gc.collect()
    assert attempts == 4
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [
        str(w.message) for w in caught
    ]
