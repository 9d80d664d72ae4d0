"""What a generation's serving stack is made of: event loop, HTTP parser, app interface.

uvicorn's names and meanings: ``--loop auto|asyncio|uvloop`` and ``--http auto|h11|httptools``
(``auto`` picks uvloop / httptools when installed, else asyncio / h11), ``--interface
auto|asgi|wsgi`` (``auto``: the app's signature says; see ``generation._app``). The master
validates the names (and that a requested uvloop or httptools is installed) without importing
them; a generation resolves ``auto`` the same way, in its own interpreter.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # asyncio is imported where a loop is made (``swapprof ctl`` needs none)
    import asyncio

LOOPS: Final = ("auto", "asyncio", "uvloop")
HTTPS: Final = ("auto", "h11", "httptools")
INTERFACES: Final = ("auto", "asgi", "wsgi")

FAST_EXTRA: Final = "pip install 'swapprof[fast]'"
_INSTALL: Final = {"uvloop": "pip install uvloop", "httptools": "pip install httptools"}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_loop(name: str) -> str:
    """``auto`` -> ``uvloop`` when installed, else ``asyncio``; other names as they are."""
    if name == "auto":
        return "uvloop" if installed("uvloop") else "asyncio"
    return name


def resolve_http(name: str) -> str:
    """``auto`` -> ``httptools`` when installed, else ``h11``; other names as they are."""
    if name == "auto":
        return "httptools" if installed("httptools") else "h11"
    return name


def missing(setting: str, name: str) -> str | None:
    """Why ``--SETTING NAME`` cannot be used here (unknown name, not installed), or None."""
    allowed = {"loop": LOOPS, "http": HTTPS, "interface": INTERFACES}[setting]
    if name not in allowed:
        return f"--{setting} {name!r}: expected one of {', '.join(allowed)}"
    if name in _INSTALL and not installed(name):
        return f"--{setting} {name} needs {name}, which is not installed: {FAST_EXTRA} (or {_INSTALL[name]})"
    return None


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A new-event-loop callable for ``--loop NAME`` (``auto`` resolved here)."""
    if resolve_loop(name) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    import asyncio

    return asyncio.SelectorEventLoop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what ``loop`` is (reported in a generation's status)."""
    return "uvloop" if type(loop).__module__.split(".")[0] == "uvloop" else "asyncio"


def preload_modules(loop: str, http: str) -> tuple[str, ...]:
    """What a zygote imports ahead for these settings (best effort, like its base list)."""
    modules = ["uvicorn.loops.asyncio", "uvicorn.protocols.http.h11_impl", "swapprof.server.generation._wsgi"]
    if resolve_loop(loop) == "uvloop":
        modules += ["uvloop", "uvicorn.loops.uvloop"]
    if resolve_http(http) == "httptools":
        modules += ["httptools", "uvicorn.protocols.http.httptools_impl"]
    return tuple(modules)
