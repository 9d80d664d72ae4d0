"""The host's registry. It is never reloaded, so whatever it holds outlives every reload."""

from __future__ import annotations

from collections.abc import Callable

Handler = Callable[[bytes], int]

#: event subscribers: every call appends, so a reloaded plugin adds its new handler beside the old
SUBSCRIBERS: list[Handler] = []
#: routes by name: a reloaded plugin replaces its old handler
ROUTES: dict[str, Handler] = {}


def subscribe(handler: Handler) -> Handler:
    SUBSCRIBERS.append(handler)
    return handler


def route(name: str, handler: Handler) -> Handler:
    ROUTES[name] = handler
    return handler
