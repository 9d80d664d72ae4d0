"""profile.proto encoding, checked with an independent decoder (protobuf's own, built from a
descriptor of pprof's profile.proto) and with swapprof's reader."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from swapprof.pprof import Profile, ProfileFormatError, encode_profile, read_profile
from swapprof.pprof._proto import encode_raw, varint

# message -> fields (name, number, type, repeated, message type), from google/pprof profile.proto
_I64, _U64, _BOOL, _STR, _MSG = 3, 4, 8, 9, 11
_SCHEMA: dict[str, list[tuple[str, int, int, bool, str]]] = {
    "ValueType": [("type", 1, _I64, False, ""), ("unit", 2, _I64, False, "")],
    "Label": [("key", 1, _I64, False, ""), ("str", 2, _I64, False, ""), ("num", 3, _I64, False, "")],
    "Sample": [
        ("location_id", 1, _U64, True, ""),
        ("value", 2, _I64, True, ""),
        ("label", 3, _MSG, True, "Label"),
    ],
    "Mapping": [
        ("id", 1, _U64, False, ""),
        ("filename", 5, _I64, False, ""),
        ("has_functions", 7, _BOOL, False, ""),
        ("has_filenames", 8, _BOOL, False, ""),
        ("has_line_numbers", 9, _BOOL, False, ""),
        ("has_inline_frames", 10, _BOOL, False, ""),
    ],
    "Line": [("function_id", 1, _U64, False, ""), ("line", 2, _I64, False, "")],
    "Location": [
        ("id", 1, _U64, False, ""),
        ("mapping_id", 2, _U64, False, ""),
        ("line", 4, _MSG, True, "Line"),
    ],
    "Function": [
        ("id", 1, _U64, False, ""),
        ("name", 2, _I64, False, ""),
        ("system_name", 3, _I64, False, ""),
        ("filename", 4, _I64, False, ""),
        ("start_line", 5, _I64, False, ""),
    ],
    "Profile": [
        ("sample_type", 1, _MSG, True, "ValueType"),
        ("sample", 2, _MSG, True, "Sample"),
        ("mapping", 3, _MSG, True, "Mapping"),
        ("location", 4, _MSG, True, "Location"),
        ("function", 5, _MSG, True, "Function"),
        ("string_table", 6, _STR, True, ""),
        ("time_nanos", 9, _I64, False, ""),
        ("duration_nanos", 10, _I64, False, ""),
        ("period_type", 11, _MSG, False, "ValueType"),
        ("period", 12, _I64, False, ""),
        ("comment", 13, _I64, True, ""),
        ("default_sample_type", 14, _I64, False, ""),
    ],
}


@pytest.fixture(scope="module")
def proto_profile() -> Any:
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(name="swapprof_test_profile.proto", package="pprof_test")
    file.syntax = "proto3"
    for name, fields in _SCHEMA.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, repeated, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind)
            field.label = 3 if repeated else 1
            if type_name:
                field.type_name = f".pprof_test.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("pprof_test.Profile"))


def sample_profile() -> Profile:
    profile = Profile([("samples", "count"), ("cpu", "nanoseconds")], ("cpu", "nanoseconds"), 10_000_000)
    profile.time_nanos, profile.duration_nanos = 1_700_000_000_000_000_000, 2_000_000_000
    profile.comments.append("hello")
    leaf = ("Worker.run", "/srv/app/worker.py", 10, 14)
    mod = ("<module>", "/srv/app/main.py", 1, 3)
    profile.add((leaf, mod), [3, 30_000_000], (("thread_id", "7"), ("thread_name", "w")))
    profile.add((leaf, mod), [1, 10_000_000], (("thread_id", "7"), ("thread_name", "w")))
    profile.add((mod,), [1, 5_000_000])
    profile.add((("idle", "/srv/app/x.py", 1, 2),), [0, 0])  # all-zero: must not be written
    return profile


def test_invariants_seen_by_protobuf(proto_profile: Any) -> None:
    message = proto_profile.FromString(gzip.decompress(encode_profile(sample_profile())))
    strings = list(message.string_table)
    assert strings[0] == ""
    assert [(strings[v.type], strings[v.unit]) for v in message.sample_type] == [
        ("samples", "count"),
        ("cpu", "nanoseconds"),
    ]
    assert (strings[message.period_type.type], message.period) == ("cpu", 10_000_000)
    assert message.time_nanos == 1_700_000_000_000_000_000 and message.duration_nanos == 2_000_000_000
    assert [strings[c] for c in message.comment] == ["hello"]
    assert len(message.mapping) == 1
    mapping = message.mapping[0]
    assert mapping.id == 1 and mapping.has_functions and mapping.has_filenames and mapping.has_line_numbers
    for table in (message.location, message.function):
        ids = [item.id for item in table]
        assert 0 not in ids and len(set(ids)) == len(ids)
    functions = {f.id: f for f in message.function}
    for location in message.location:
        assert location.mapping_id == 1 and len(location.line) == 1
        assert location.line[0].function_id in functions and location.line[0].line > 0
    names = {strings[f.name]: f for f in functions.values()}
    assert set(names) == {"Worker.run", "<module>"}
    assert all(f.system_name == 0 for f in functions.values())
    assert (
        strings[names["Worker.run"].filename] == "/srv/app/worker.py" and names["Worker.run"].start_line == 10
    )
    samples = [list(s.value) for s in message.sample]
    assert sorted(samples) == [[1, 5_000_000], [4, 40_000_000]]  # the zero sample is gone
    labelled = next(s for s in message.sample if s.label)
    assert {strings[lab.key]: strings[lab.str] for lab in labelled.label} == {
        "thread_id": "7",
        "thread_name": "w",
    }


def test_round_trip_through_reader() -> None:
    original = sample_profile()
    back = read_profile(encode_profile(original))
    assert back.sample_types == original.sample_types and back.period == original.period
    assert back.comments == ["hello"] and back.duration_nanos == original.duration_nanos
    assert back.samples == {k: v for k, v in original.samples.items() if any(v)}
    assert read_profile(encode_raw(original)).samples == back.samples  # plain, not gzipped, too


def test_negative_values_survive(proto_profile: Any) -> None:
    profile = Profile([("inuse_space", "bytes")], ("space", "bytes"), 1)
    profile.add((("f", "/a.py", 1, 2),), [-4096])
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    assert read_profile(encode_profile(profile)).totals() == [-4096]
    assert list(proto_profile.FromString(encode_raw(profile)).sample[0].value) == [-4096]


def test_delta_drops_unchanged_samples() -> None:
    before, after = sample_profile(), sample_profile()
    after.add((("new", "/n.py", 1, 1),), [2, 7])
    after.time_nanos += 5
    delta = after.minus(before)
    assert list(delta.samples.values()) == [[2, 7]] and delta.duration_nanos == 5


@pytest.mark.parametrize("data", [b"", b"\x1f\x8b garbage", b"\x0a\x05abc", b"\xff\xff\xff"])
def test_garbage_is_a_format_error(data: bytes) -> None:
    with pytest.raises(ProfileFormatError):
        read_profile(data)


def test_many_samples_encode_and_decode() -> None:
    profile = Profile([("samples", "count"), ("cpu", "nanoseconds")], ("cpu", "nanoseconds"), 10_000_000)
    frames = [(f"fn_{i}", f"/m/{i % 50}.py", i, i + 1) for i in range(500)]
    for i in range(20_000):
        stack = tuple(frames[(i * 7 + d) % 500] for d in range(12))
        profile.add(stack, [1, 10_000_000], (("thread_id", str(i % 16)),))
    back = read_profile(encode_profile(profile))
    assert back.totals() == profile.totals() and len(back.samples) == len(profile.samples)
