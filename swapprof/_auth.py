"""The one bearer-token check, for every debug endpoint swapprof serves (the master's debug
port, a generation's app-port routes, ``swapprof.pprof``'s servers)."""

from __future__ import annotations

import hmac

CHALLENGE = 'Bearer realm="swapprof"'
"""The ``WWW-Authenticate`` value sent with a 401."""


def bearer_ok(authorization: str | bytes | None, token: str) -> bool:
    """True when an ``Authorization`` header value carries ``token``: the scheme in any case
    (RFC 9110 makes it case-insensitive), the comparison in constant time."""
    if authorization is None:
        return False
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, given = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
