"""A plugin that leaks on every reload: it *subscribes* its handler, and the registry keeps the
old handler of each earlier version, with the 200 kB lookup table its closure holds."""

from __future__ import annotations

import plugin_registry

PAYLOAD_BYTES = 200_000


def _make_handler() -> plugin_registry.Handler:
    table = bytearray(PAYLOAD_BYTES)  # per-version state, e.g. a precomputed lookup table

    def handle(request: bytes) -> int:
        return table[len(request) % PAYLOAD_BYTES]

    return handle


handle = plugin_registry.subscribe(_make_handler())
