"""The fixed twin of ``leaky_plugin``: it registers its handler *by name*, so a reload replaces
the old handler and the old version (and its 200 kB table) can be collected."""

from __future__ import annotations

import plugin_registry

PAYLOAD_BYTES = 200_000


def _make_handler() -> plugin_registry.Handler:
    table = bytearray(PAYLOAD_BYTES)

    def handle(request: bytes) -> int:
        return table[len(request) % PAYLOAD_BYTES]

    return handle


handle = plugin_registry.route("fixed_plugin", _make_handler())
