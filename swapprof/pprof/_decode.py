"""Read a profile.proto (gzipped or not) back into a ``Profile``: for the CLI and the flame graph.

Accepts what pprof writes: packed or unpacked repeated fields, fields in any order, locations
with several lines (inlined calls, innermost first). Numeric labels become "value unit" strings.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

from swapprof.pprof._errors import ProfileFormatError
from swapprof.pprof._model import Frame, Profile

_Field = tuple[int, int | bytes]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProfileFormatError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[_Field]:
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ProfileFormatError("truncated field")
            yield number, buf[pos : pos + size]
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ProfileFormatError(f"unsupported wire type {wire}")


def _ints(value: int | bytes) -> list[int]:
    """A repeated integer field, packed (bytes) or not (one int)."""
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        number, pos = _varint(value, pos)
        out.append(number)
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _message(value: int | bytes) -> dict[int, list[int | bytes]]:
    if isinstance(value, int):
        raise ProfileFormatError("expected a message, found a number")
    out: dict[int, list[int | bytes]] = {}
    for number, item in _fields(value):
        out.setdefault(number, []).append(item)
    return out


def _one(msg: dict[int, list[int | bytes]], number: int) -> int:
    items = msg.get(number)
    return items[-1] if items and isinstance(items[-1], int) else 0


def _all(msg: dict[int, list[int | bytes]], number: int) -> list[int]:
    return [n for item in msg.get(number, []) for n in _ints(item)]


def decode(data: bytes) -> Profile:
    """Parse gzipped or plain profile.proto bytes; ``ProfileFormatError`` if they are not one."""
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        return _decode(_message(raw))
    except (IndexError, ValueError, KeyError, EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, ProfileFormatError):
            raise
        raise ProfileFormatError(f"not a pprof profile: {exc}") from None


def _decode(top: dict[int, list[int | bytes]]) -> Profile:
    strings = [s.decode("utf-8", "replace") for s in top.get(6, []) if isinstance(s, bytes)]
    if not strings or strings[0] != "":
        raise ProfileFormatError("not a pprof profile: string_table[0] must be empty")

    def kind(value: int | bytes) -> tuple[str, str]:
        msg = _message(value)
        return strings[_one(msg, 1)], strings[_one(msg, 2)]

    functions: dict[int, tuple[str, str, int]] = {}
    for item in top.get(5, []):
        msg = _message(item)
        functions[_one(msg, 1)] = (strings[_one(msg, 2)], strings[_one(msg, 4)], _one(msg, 5))
    locations: dict[int, list[Frame]] = {}
    for item in top.get(4, []):
        msg = _message(item)
        frames = []
        for line in msg.get(4, []):
            line_msg = _message(line)
            name, filename, start = functions.get(_one(line_msg, 1), ("", "", 0))
            frames.append((name, filename, start, _one(line_msg, 2)))
        locations[_one(msg, 1)] = frames or [(f"{_one(msg, 3):#x}", "", 0, 0)]
    period_type = kind(top[11][-1]) if 11 in top else ("", "")
    profile = Profile([kind(v) for v in top.get(1, [])], period_type, _signed(_one(top, 12)))
    profile.default_sample_type = strings[_one(top, 14)]
    profile.time_nanos, profile.duration_nanos = _signed(_one(top, 9)), _signed(_one(top, 10))
    profile.comments = [strings[i] for i in _all(top, 13)]
    for item in top.get(2, []):
        msg = _message(item)
        stack = tuple(frame for loc in _all(msg, 1) for frame in locations[loc])
        labels = []
        for label in msg.get(3, []):
            lab = _message(label)
            text = strings[_one(lab, 2)] if 2 in lab else f"{_signed(_one(lab, 3))} {strings[_one(lab, 4)]}"
            labels.append((strings[_one(lab, 1)], text.strip()))
        values = [_signed(v) for v in _all(msg, 2)]
        if len(values) != len(profile.sample_types):
            raise ProfileFormatError("a sample has the wrong number of values")
        profile.add(stack, values, tuple(sorted(labels)))
    return profile
