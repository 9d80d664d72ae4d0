"""A small YAML writer for the rule file: block mappings and lists, strings, numbers, booleans.

Enough for Prometheus rules, so no YAML library is needed. Strings are written plain when YAML
would read them back as the same string, double-quoted (JSON escapes are valid YAML) otherwise,
and as ``|-`` literal blocks when they span lines (long PromQL expressions).
"""

from __future__ import annotations

import json
import re
from typing import Any

_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")
_TYPED = re.compile(r"(?i)(true|false|yes|no|on|off|y|n|null|~|[-+]?(\.?[0-9][0-9_.:eE+-]*|\.inf|\.nan))")


def _plain_is_safe(text: str) -> bool:
    return not (
        not text
        or text != text.strip()
        or text[0] in _INDICATORS
        or ": " in text
        or " #" in text
        or text.endswith(":")
        or _TYPED.fullmatch(text)
        or any(ch < " " for ch in text)
    )


def scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    return text if _plain_is_safe(text) else json.dumps(text, ensure_ascii=False)


def _block(text: str, pad: str) -> list[str]:
    return ["|-", *(f"{pad}{line}" if line else "" for line in text.rstrip("\n").split("\n"))]


def _value_lines(value: Any, indent: int) -> tuple[str, list[str]]:
    """(what follows the key on its line, the lines below it)."""
    pad = " " * indent
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        head, *body = _block(value, pad)
        return f" {head}", body
    if isinstance(value, dict | list):
        if not value:
            return " {}" if isinstance(value, dict) else " []", []
        return "", lines(value, indent)
    return f" {scalar(value.rstrip(chr(10)) if isinstance(value, str) else value)}", []


def lines(value: Any, indent: int = 0) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            inline, below = _value_lines(item, indent + 2)
            out.append(f"{pad}{scalar(key)}:{inline}")
            out.extend(below)
        return out
    for item in value:
        if isinstance(item, dict) and item:
            first, *rest = lines(item, indent + 2)
            out.append(f"{pad}- {first[indent + 2 :]}")
            out.extend(rest)
        else:
            inline, below = _value_lines(item, indent + 2)
            out.append(f"{pad}-{inline}")
            out.extend(below)
    return out


def dumps(value: dict[str, Any], header: str = "") -> str:
    comment = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join([*comment, *lines(value)]) + "\n"
