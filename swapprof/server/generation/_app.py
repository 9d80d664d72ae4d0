"""Find the app object a generation serves (``MODULE:ATTR``, dotted attributes allowed), and
tell what it is: an ASGI 3 app, a WSGI app, or no app at all.

ASGI 3: a coroutine function ``async def app(scope, receive, send)``, or an object whose
``__call__`` is one (FastAPI, Starlette, Django's ``ASGIHandler``). WSGI: a plain callable taking
``(environ, start_response)`` (Flask, Django's ``WSGIHandler``, a class per PEP 3333). Anything
else -- not callable, or a signature that takes neither -- is refused with one line that names
the object and what was expected (reason ``app_invalid``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Final

ASGI: Final = "asgi"
WSGI: Final = "wsgi"
EXPECTED: Final = (
    "expected an ASGI app (async callable(scope, receive, send)) "
    "or a WSGI app (callable(environ, start_response))"
)


class AppInvalid(Exception):
    """The imported object is not an app that can be served as asked; the message is one line."""


def import_app(spec: str) -> object:
    """Import ``MODULE`` and follow ``ATTR`` (``a.b``); import errors propagate as they are."""
    module_name, _, attr = spec.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def detect(obj: object) -> str | None:
    """``"asgi"``, ``"wsgi"``, or None when ``obj`` is neither (see the module docstring)."""
    if not callable(obj):
        return None
    is_coroutine = inspect.iscoroutinefunction(obj) or (
        not inspect.isclass(obj)
        and not inspect.isroutine(obj)
        and inspect.iscoroutinefunction(getattr(obj, "__call__", None))  # noqa: B004
    )
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # a builtin or extension type: take it by its kind
        return ASGI if is_coroutine else WSGI
    if is_coroutine:
        return ASGI if _takes(signature, 3) else None
    return WSGI if _takes(signature, 2) else None


def check_app(obj: object, spec: str, interface: str = "auto") -> str:
    """The interface to serve ``obj`` with (``asgi``/``wsgi``); AppInvalid when there is none,
    or when ``interface`` (asgi, wsgi) names one that ``obj`` is not."""
    kind = detect(obj)
    if kind is None:
        raise AppInvalid(f"{spec} is {describe(obj)}: {EXPECTED}")
    if interface not in ("auto", kind):
        wanted = (
            "an ASGI app (async callable(scope, receive, send))"
            if interface == ASGI
            else "a WSGI app (callable(environ, start_response))"
        )
        raise AppInvalid(
            f"{spec} is {'an' if kind == ASGI else 'a'} {kind.upper()} app ({describe(obj)}) but --interface {interface} wants "
            f"{wanted}; use --interface {kind} or auto"
        )
    return kind


def describe(obj: object) -> str:
    """A few words for ``obj``: ``int 42``, ``function handler(request)``, ``Flask <Flask 'x'>``."""
    if inspect.isroutine(obj) or inspect.isclass(obj):
        what = "class" if inspect.isclass(obj) else "function"
        if inspect.iscoroutinefunction(obj):
            what = "coroutine function"
        try:
            full = inspect.signature(obj)
            empty = inspect.Parameter.empty
            bare = [p.replace(annotation=empty, default=empty) for p in full.parameters.values()]
            signature = str(full.replace(parameters=bare, return_annotation=empty))
        except (TypeError, ValueError):
            signature = "(...)"
        return f"{what} {getattr(obj, '__name__', obj)!s}{signature}"
    text = repr(obj)
    if " object at 0x" in text:  # the default repr says no more than the type
        return f"{type(obj).__name__} object"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(obj).__name__} {text}"


def _takes(signature: inspect.Signature, count: int) -> bool:
    """Whether a call with ``count`` positional arguments binds to ``signature``."""
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True
