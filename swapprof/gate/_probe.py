"""The generation probe: which generation answers ``GET PATH`` on a fresh connection?

An answer's identity is its whole body, or one field of its JSON body (``field``). An upgrade
is seen from the client side when the identity changes.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

POLL_S = 0.005


@dataclass(frozen=True)
class Probe:
    host: str
    port: int
    path: str = "/"
    field: str | None = None
    timeout: float = 2.0

    def identity(self) -> str | None:
        """The identity of whoever answers now; None if nobody answers with a 2xx."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            answer = conn.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        if not 200 <= answer.status < 300:
            return None
        if self.field is None:
            return body.decode("utf-8", "replace")
        try:
            value = json.loads(body)[self.field]
        except (ValueError, KeyError, TypeError):
            return None
        return json.dumps(value, sort_keys=True)

    def wait(
        self, until: float, differs_from: str | None = None, give_up: Callable[[], bool] = lambda: False
    ) -> tuple[str, int] | None:
        """Poll until an identity (other than ``differs_from``) answers; None once ``until``
        (monotonic seconds) passed or ``give_up()`` is true. Returns the identity and the
        monotonic ns it was seen at."""
        while True:
            ident = self.identity()
            seen = time.monotonic_ns()
            if ident is not None and ident != differs_from:
                return ident, seen
            if time.monotonic() >= until or give_up():
                return None
            time.sleep(POLL_S)
