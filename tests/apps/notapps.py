"""Objects that are no app: each must be refused with reason app_invalid."""

from __future__ import annotations


def one_argument(request: object) -> None:
    return None


async def asgi_app(scope: object, receive: object, send: object) -> None:
    return None


def wsgi_app(environ: object, start_response: object) -> list[bytes]:
    return []


number = 42
