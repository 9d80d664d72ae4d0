"""Find the app object a generation serves: ``MODULE:ATTR`` (dotted attributes allowed)."""

from __future__ import annotations

import importlib


def import_app(spec: str) -> object:
    """Import ``MODULE`` and follow ``ATTR`` (``a.b``); import errors propagate as they are."""
    module_name, _, attr = spec.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
