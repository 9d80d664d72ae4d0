"""The HTTP protocol a generation serves with: uvicorn's, plus what the drain and the input
limits need.

- ``last_rx``: when the connection last received a byte (the drain closes a connection idle
  through its grace window, never one that received bytes).
- A cap on a request's head with httptools (uvicorn sets none there: a 200 KB header was
  served, and a client could grow one without bound): past ``MAX_REQUEST_HEAD`` bytes before
  the headers are complete, the answer is 431 and the connection is closed. h11 bounds what
  it buffers itself (``h11_max_incomplete_event_size``: an incomplete head over 16 KB is 400).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

MAX_REQUEST_HEAD = 65536
LINGER_S = 2.0


def serving_protocol(base: type[Any]) -> type[Any]:
    """``base`` (uvicorn's h11 or httptools protocol class) with the additions above."""

    class Tracked(base):  # type: ignore[misc]
        last_rx = 0.0

        def data_received(self, data: bytes) -> None:
            self.last_rx = time.monotonic()
            super().data_received(data)

    if "httptools" not in base.__module__:
        return Tracked

    class HeadCapped(Tracked):
        head_rx = 0  # bytes received while a request head is read
        in_body = False
        refused = False

        def data_received(self, data: bytes) -> None:
            if self.refused:
                return  # lingering: read and drop the rest of the head
            if not self.in_body:
                self.head_rx += len(data)
            super().data_received(data)  # a head completed in ``data`` resets the count
            if not self.in_body and self.head_rx > MAX_REQUEST_HEAD:
                self._refuse_head()

        def on_headers_complete(self) -> None:
            self.in_body, self.head_rx = True, 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self.in_body = False
            super().on_message_complete()

        def _refuse_head(self) -> None:
            if self.transport.is_closing():
                return
            text = f"request head over {MAX_REQUEST_HEAD} bytes\n".encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(text)).encode() + b"\r\nconnection: close\r\n\r\n" + text
            )
            # A lingering close, as nginx does: closing with unread bytes would make the kernel
            # send RST, and the client would lose the 431 before reading it. So: the answer,
            # then FIN, then drop what still arrives until the client closes or LINGER_S passes.
            self.refused = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)

        def eof_received(self) -> bool | None:
            if self.refused:
                self.transport.close()
                return None
            result: bool | None = super().eof_received()
            return result

    return HeadCapped
