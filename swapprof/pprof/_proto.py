"""profile.proto encoding, written directly in the protobuf wire format (no protoc).

Field numbers follow github.com/google/pprof/proto/profile.proto. Invariants pprof, Pyroscope
and speedscope rely on: ``string_table[0] == ""``; ids start at 1 and are unique; every Location
has one Line; one Mapping, flagged as already symbolized; no all-zero samples.
"""

from __future__ import annotations

import gzip
import sys

from swapprof.pprof._model import Frame, Labels, Profile

_SMALL = [bytes([n]) for n in range(128)]


def varint(value: int) -> bytes:
    """Base-128 varint; negative numbers as 64-bit two's complement (10 bytes), as int64 wants."""
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value) if value else b""


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


class _Strings(dict[str, int]):
    """The string table: text -> index, with "" at index 0."""

    def __init__(self) -> None:
        super().__init__({"": 0})

    def __missing__(self, text: str) -> int:
        index = self[text] = len(self)
        return index


def _value_type(number: int, strings: _Strings, kind: tuple[str, str]) -> bytes:
    return field_bytes(number, field_int(1, strings[kind[0]]) + field_int(2, strings[kind[1]]))


def _labels(strings: _Strings, labels: Labels) -> bytes:
    return b"".join(
        field_bytes(3, field_int(1, strings[key]) + field_int(2, strings[value])) for key, value in labels
    )


class _Locations(dict[Frame, bytes]):
    """Frame -> varint of its location id, numbered on first sight."""

    def __missing__(self, frame: Frame) -> bytes:
        encoded = self[frame] = varint(len(self) + 1)
        return encoded


def _short(length: int) -> bytes:
    """Varint of a length, from a table for the common sizes."""
    return _LENGTHS[length] if length < len(_LENGTHS) else varint(length)


_LENGTHS = [varint(n) for n in range(2048)]


def encode_raw(profile: Profile) -> bytes:
    """The uncompressed profile.proto message.

    Per-frame work runs in C (``map`` over a dict): a 100k-sample profile has millions of frame
    references. Values and labels are encoded once per distinct tuple.
    """
    strings = _Strings()
    locations = _Locations()
    location = locations.__getitem__
    value_cache: dict[tuple[int, ...], bytes] = {}
    label_cache: dict[Labels, bytes] = {}
    parts = [_value_type(1, strings, kind) for kind in profile.sample_types]
    for (stack, labels), values in profile.samples.items():
        key = tuple(values)
        encoded = value_cache.get(key)
        if encoded is None:
            if not any(key):
                continue
            packed = b"".join(map(varint, key))
            encoded = value_cache[key] = b"\x12" + _short(len(packed)) + packed
        if stack:
            packed = b"".join(map(location, stack))
            encoded = b"\x0a" + _short(len(packed)) + packed + encoded
        if labels:
            tags = label_cache.get(labels)
            if tags is None:
                tags = label_cache[labels] = _labels(strings, labels)
            encoded += tags
        parts.append(b"\x12" + _short(len(encoded)) + encoded)
    mapping = field_int(1, 1) + field_int(5, strings[sys.executable or "python"])
    parts.append(field_bytes(3, mapping + b"".join(field_int(n, 1) for n in (7, 8, 9, 10))))
    functions: dict[tuple[str, str, int], int] = {}
    for (name, filename, start_line, line), loc_id in locations.items():
        function_id = functions.setdefault((name, filename, start_line), len(functions) + 1)
        line_msg = field_bytes(4, field_int(1, function_id) + field_int(2, line))
        parts.append(field_bytes(4, b"\x08" + loc_id + field_int(2, 1) + line_msg))
    for (name, filename, start_line), function_id in functions.items():
        # system_name (3) stays empty: pprof would demangle it and show "<module>" as "<unknown>".
        body = field_int(1, function_id) + field_int(2, strings[name])
        body += field_int(4, strings[filename]) + field_int(5, start_line)
        parts.append(field_bytes(5, body))
    tail = [field_int(9, profile.time_nanos), field_int(10, profile.duration_nanos)]
    tail.append(_value_type(11, strings, profile.period_type))
    tail.append(field_int(12, profile.period))
    tail.extend(field_int(13, strings[comment]) for comment in profile.comments)
    if profile.default_sample_type:
        tail.append(field_int(14, strings[profile.default_sample_type]))
    parts.extend(field_bytes(6, text.encode("utf-8", "replace")) for text in strings)
    return b"".join(parts + tail)


def encode(profile: Profile, compresslevel: int = 6) -> bytes:
    """Gzipped profile.proto, as served by Go's /debug/pprof endpoints."""
    return gzip.compress(encode_raw(profile), compresslevel=compresslevel, mtime=0)
