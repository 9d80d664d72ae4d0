"""The master's side of the zygote protocol, against a scripted zygote on a socketpair.

A late answer (to a request that timed out, or whose caller was cancelled) must never be taken
for the answer to the next request, and a process forked for that late request is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest

from swapprof.server.master._zygote_client import Zygote, ZygoteError


class _Alive:
    alive = True
    pid = 0
    log = None

    def describe_exit(self) -> str:
        return "exited"


def _zygote(loop: asyncio.AbstractEventLoop) -> tuple[Zygote, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    zygote = Zygote(loop, None, 1)
    zygote.process = _Alive()  # type: ignore[assignment]
    zygote.sock, zygote.ready = ours, True
    return zygote, theirs


def _request(peer: socket.socket) -> dict[str, Any]:
    data, fds, _, _ = socket.recv_fds(peer, 1 << 16, 4)
    for fd in fds:
        os.close(fd)
    request: dict[str, Any] = json.loads(data)
    return request


def test_a_late_answer_is_skipped_and_the_process_it_names_is_killed() -> None:
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    async def run() -> dict[str, Any]:
        zygote, peer = _zygote(asyncio.get_running_loop())

        def play() -> None:
            request = _request(peer)
            # first the answer to an earlier, abandoned request (a fork nobody will adopt) ...
            peer.send(json.dumps({"pid": orphan.pid, "id": request["id"] - 1}).encode())
            # ... then the answer to this one
            peer.send(json.dumps({"ok": True, "id": request["id"]}).encode())

        player = asyncio.get_running_loop().run_in_executor(None, play)
        try:
            return await zygote._call({"cmd": "check"})
        finally:
            await player
            zygote.close()
            peer.close()

    try:
        answer = asyncio.run(run())
        assert answer["ok"] is True
        assert orphan.wait(timeout=10) == -signal.SIGKILL
    finally:
        orphan.kill()
        orphan.wait()


def test_a_fork_answer_without_a_pid_is_a_protocol_error() -> None:
    async def run() -> None:
        zygote, peer = _zygote(asyncio.get_running_loop())

        def play() -> None:
            request = _request(peer)
            peer.send(json.dumps({"ok": True, "id": request["id"]}).encode())

        player = asyncio.get_running_loop().run_in_executor(None, play)
        r, w = os.pipe()
        try:
            with pytest.raises(ZygoteError) as caught:
                await zygote.fork({}, w)
            assert caught.value.kind == "protocol"
        finally:
            await player
            os.close(r)
            os.close(w)
            zygote.close()
            peer.close()

    asyncio.run(run())
