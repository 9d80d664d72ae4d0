"""The per-worker accounting the master's /metrics serves: counters summed per worker index
over the processes that held it, never backwards; gauges from the live process only; bounded."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swapprof.pprof import Profile, ProfileFormatError, merge_profiles, read_profile
from swapprof.pprof._proto import encode
from swapprof.server.master._worker_metrics import WorkerMetrics, merge_families


def exposition(hits: float, rss: float, buckets: tuple[float, float] = (1, 2), extra: str = "") -> list:
    text = f"""# HELP app_hits_total Hits
# TYPE app_hits_total counter
app_hits_total{{path="/"}} {hits}
app_hits_created{{path="/"}} 1.7e9
# HELP rss_bytes RSS
# TYPE rss_bytes gauge
rss_bytes {rss}
# HELP pause_seconds Pauses
# TYPE pause_seconds histogram
pause_seconds_bucket{{le="0.1"}} {buckets[0]}
pause_seconds_bucket{{le="+Inf"}} {buckets[1]}
pause_seconds_count {buckets[1]}
pause_seconds_sum 0.5
{extra}"""
    return list(text_string_to_metric_families(text))


def values(metrics: WorkerMetrics, serving: int | None = None) -> dict[tuple[str, str, str], float]:
    """(sample name, worker, le or path) -> value."""
    out = {}
    for family in metrics.families(serving):
        for s in family.samples:
            out[(s.name, s.labels["worker"], s.labels.get("le", s.labels.get("path", "")))] = s.value
    return out


def test_counters_of_gone_processes_carry_over_and_gauges_are_the_live_ones() -> None:
    metrics = WorkerMetrics()
    metrics.update((1, 0, 100), exposition(5, 1000))
    metrics.update((1, 1, 101), exposition(7, 2000))
    assert values(metrics)[("app_hits_total", "0", "/")] == 5
    assert values(metrics)[("rss_bytes", "1", "")] == 2000
    # worker 0 replaced (same generation, new pid): the old one's 5 stay, the new one's add up
    metrics.update((1, 0, 100), exposition(6, 1100))
    metrics.prune({(1, 1, 101), (1, 0, 102)})
    metrics.update((1, 0, 102), exposition(1, 300, buckets=(0, 1)))
    got = values(metrics, serving=1)
    assert got[("app_hits_total", "0", "/")] == 7
    assert got[("rss_bytes", "0", "")] == 300  # the live process's gauge only
    assert got[("pause_seconds_bucket", "0", "0.1")] == 1 and got[("pause_seconds_count", "0", "")] == 3
    assert got[("pause_seconds_sum", "0", "")] == 1.0
    assert not any(name.endswith("_created") for name, _, _ in got)


def test_an_upgrade_overlap_counts_both_and_the_serving_generation_owns_the_gauge() -> None:
    metrics = WorkerMetrics()
    metrics.update((1, 0, 100), exposition(10, 1000))
    metrics.update((2, 0, 200), exposition(2, 500))  # the new generation, while the old drains
    got = values(metrics, serving=2)
    assert got[("app_hits_total", "0", "/")] == 12 and got[("rss_bytes", "0", "")] == 500
    assert values(metrics, serving=1)[("rss_bytes", "0", "")] == 1000
    metrics.update((1, 0, 100), exposition(11, 1000))  # its final read
    metrics.retire((1, 0, 100))
    metrics.update((1, 0, 100), exposition(99, 1000))  # a late read of a retired process: ignored
    assert values(metrics, serving=2)[("app_hits_total", "0", "/")] == 13


def test_a_process_whose_counter_went_down_keeps_what_it_had() -> None:
    metrics = WorkerMetrics()
    metrics.update((1, 0, 100), exposition(10, 1))
    metrics.update((1, 0, 100), exposition(3, 1))  # its registry was rebuilt (an in-place reload)
    assert values(metrics)[("app_hits_total", "0", "/")] == 13


def test_a_series_a_later_read_lacks_is_not_lost() -> None:
    metrics = WorkerMetrics()
    extra = '# TYPE other_total counter\nother_total{k="v"} 4\n'
    metrics.update((1, 0, 100), exposition(1, 1, extra=extra))
    metrics.update((1, 0, 100), exposition(2, 1))
    assert values(metrics)[("other_total", "0", "")] == 4


def test_bounded_series_and_a_workers_own_worker_label() -> None:
    metrics = WorkerMetrics(max_series=3)
    text = "# TYPE many_total counter\n" + "".join(f'many_total{{i="{i}",worker="x"}} 1\n' for i in range(10))
    metrics.update((1, 0, 100), list(text_string_to_metric_families(text)))
    samples = [s for f in metrics.families(1) for s in f.samples]
    assert len(samples) == 3 and metrics.dropped == 7
    assert all(s.labels["exported_worker"] == "x" and s.labels["worker"] == "0" for s in samples)


def test_merged_with_the_masters_families_by_name() -> None:
    master = exposition(1, 1)
    metrics = WorkerMetrics()
    conflict = "# HELP pause_seconds other\n# TYPE pause_seconds gauge\npause_seconds 3\n"
    metrics.update((1, 0, 100), list(text_string_to_metric_families(conflict)) + exposition(2, 2)[:2])
    merged = {f.name: f for f in merge_families(master, metrics.families(1))}
    hits = merged["app_hits"]
    assert [s.labels.get("worker") for s in hits.samples if s.name == "app_hits_total"] == [None, "0"]
    # one exposition cannot hold a histogram and a gauge of one name: the master's stays
    assert merged["pause_seconds"].type == "histogram"
    assert all("worker" not in s.labels for s in merged["pause_seconds"].samples)


def _profile(stack_name: str, value: int, start: int, duration: int, period: int = 10) -> Profile:
    profile = Profile([("samples", "count"), ("cpu", "nanoseconds")], ("cpu", "nanoseconds"), period)
    profile.time_nanos, profile.duration_nanos = start, duration
    profile.add(((stack_name, "app.py", 1, 2),), [value, value * period], (("thread_name", "main"),))
    return profile


def test_merge_profiles_labels_samples_and_spans_both() -> None:
    merged = merge_profiles(
        [({"worker": "0"}, _profile("f", 3, 1000, 500)), ({"worker": "1"}, _profile("f", 4, 1200, 500, 20))]
    )
    back = read_profile(encode(merged))
    labels = {dict(key[1])["worker"]: values for key, values in back.samples.items()}
    assert labels == {"0": [3, 30], "1": [4, 80]}
    assert all(dict(key[1])["thread_name"] == "main" for key in back.samples)
    assert (back.time_nanos, back.duration_nanos, back.period) == (1000, 700, 20)
    with pytest.raises(ProfileFormatError):
        merge_profiles([])
    other = Profile([("inuse_space", "bytes")], ("space", "bytes"), 1)
    with pytest.raises(ProfileFormatError, match="cannot merge"):
        merge_profiles([({}, _profile("f", 1, 0, 0)), ({}, other)])
