"""Settings of the debug endpoints: argument, then environment variable, then default."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from swapprof._errors import ConfigError
from swapprof.pprof._cpu import DEFAULT_HZ, check
from swapprof.pprof._heap import DEFAULT_FRAMES

ENV_TOKEN = "SWAPPROF_PPROF_TOKEN"
ENV_MAX_SECONDS = "SWAPPROF_PPROF_MAX_SECONDS"
ENV_HZ = "SWAPPROF_PPROF_HZ"
ENV_TRACEMALLOC = "SWAPPROF_TRACEMALLOC"
DEFAULT_SECONDS = 30
DEFAULT_MAX_SECONDS = 300
#: An extra JSON route: called with no arguments, returns something ``json.dumps`` accepts
#: (ASGI also awaits an awaitable result).
JsonRoute = Callable[[], object]
_ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None


def check_route(name: str, route: object) -> None:
    if not isinstance(name, str) or not _ROUTE_NAME.match(name) or not callable(route):
        raise ConfigError(f"route {name!r} needs a name of letters, digits, '.', '_', '-' and a callable")


def tracemalloc_frames(value: int | bool | str | None) -> int:
    """0 = leave tracemalloc alone; 1 or true = trace 32 frames; N >= 2 = trace N frames."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "0", "false", "no", "off"):
            return 0
        value = True if text in ("true", "yes", "on") else _int(ENV_TRACEMALLOC, text)
    if value is None or value is False:
        return 0
    if value is True or value == 1:
        return DEFAULT_FRAMES
    if value < 0:
        raise ConfigError(f"tracemalloc={value} must be 0 (off), 1 (on) or a frame count")
    return int(value)


@dataclass(frozen=True)
class Settings:
    token: str | None = None
    routes: dict[str, JsonRoute] = field(default_factory=dict)  # grows by add_route()
    max_seconds: int = DEFAULT_MAX_SECONDS
    hz: int = DEFAULT_HZ
    tracemalloc: int = 0

    @classmethod
    def resolve(
        cls,
        *,
        token: str | None = None,
        routes: Mapping[str, JsonRoute] | None = None,
        max_seconds: int | None = None,
        hz: int | None = None,
        tracemalloc: int | bool | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        env = os.environ if environ is None else environ
        token = token if token is not None else env.get(ENV_TOKEN)
        if max_seconds is None:
            max_seconds = _int(ENV_MAX_SECONDS, env[ENV_MAX_SECONDS]) if env.get(ENV_MAX_SECONDS) else None
        if hz is None:
            hz = _int(ENV_HZ, env[ENV_HZ]) if env.get(ENV_HZ) else DEFAULT_HZ
        frames = tracemalloc_frames(tracemalloc if tracemalloc is not None else env.get(ENV_TRACEMALLOC))
        max_seconds = DEFAULT_MAX_SECONDS if max_seconds is None else max_seconds
        if max_seconds < 1:
            raise ConfigError(f"max_seconds={max_seconds} must be at least 1")
        check(hz, "wall")
        for name, route in (routes or {}).items():
            check_route(name, route)
        return cls(token or None, dict(routes or {}), max_seconds, hz, frames)
