"""Every worker's metrics, labelled ``worker="i"``, with counters that never go backwards.

The master reads each worker process's exposition (prometheus_client's parser) and keeps, per
worker index, two things: the last read of every live process in that slot, and the
*retired* totals -- what the slot's processes that are gone had counted. A counting series
(a counter, a histogram's ``_bucket``/``_count``/``_sum``, a summary's ``_count``/``_sum``) is
served as retired + the sum over the slot's live processes (an old generation draining
beside its successor counts too); a gauge is the serving process's value only. When a process
leaves (its final read, its exit, or a replacement), its counts move into the retired totals,
so the sum stays where it was and the next process's counts add on top. A process whose own
counter went down (a registry rebuilt by an in-place reload) has the old value retired first.

Bounded: one entry per live process, and per slot at most ``max_series`` counting series
(more are dropped, and counted); the worker index is bounded by ``--workers``. Series of a
gone process that no later process has are kept (so they do not reset) within that bound.
``_created`` samples are dropped: a sum of several processes has no creation time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

MAX_SERIES = 20000
WORKER_LABEL = "worker"
#: a process: (generation number, worker index, pid)
ProcessKey = tuple[int, int, int]
#: a series within a slot: (family, sample name, labels)
SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]
_COUNTING = {
    "counter": ("_total", ""),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}


def counting(family_type: str, family: str, sample: str) -> bool:
    """Whether ``sample`` of a family of ``family_type`` is cumulative (must never decrease)."""
    suffixes = _COUNTING.get(family_type, ())
    return any(sample == family + suffix for suffix in suffixes)


@dataclass
class _Process:
    worker: int
    counters: dict[SeriesKey, float] = field(default_factory=dict)
    gauges: dict[SeriesKey, float] = field(default_factory=dict)


class WorkerMetrics:
    def __init__(self, max_series: int = MAX_SERIES) -> None:
        self.max_series = max_series
        self.dropped = 0  # series refused beyond max_series
        self._kinds: dict[str, tuple[str, str]] = {}  # family -> (type, help), bounded with the series
        self._retired: dict[int, dict[SeriesKey, float]] = {}
        self._live: dict[ProcessKey, _Process] = {}
        self._closed: set[ProcessKey] = set()  # retired, maybe still alive: later reads are ignored

    def update(self, process: ProcessKey, families: Iterable[Metric]) -> None:
        """Take a fresh read of ``process`` (ignored once it was retired)."""
        if process in self._closed:
            return
        proc = self._live.setdefault(process, _Process(process[1]))
        gauges: dict[SeriesKey, float] = {}
        for family in families:
            if family.name not in self._kinds and len(self._kinds) >= self.max_series:
                self.dropped += len(family.samples)
                continue
            self._kinds[family.name] = (family.type, family.documentation)
            for sample in family.samples:
                if sample.name.endswith("_created") or math.isnan(sample.value):
                    continue
                labels = tuple(sorted(_relabel(sample.labels).items()))
                key = (family.name, sample.name, labels)
                if not counting(family.type, family.name, sample.name):
                    if len(gauges) < self.max_series:
                        gauges[key] = sample.value
                    continue
                before = proc.counters.get(key)
                if before is None and len(proc.counters) >= self.max_series:
                    self.dropped += 1
                    continue
                if before is not None and sample.value < before:  # the process's own reset
                    self._retire_value(proc.worker, key, before)
                proc.counters[key] = sample.value
        proc.gauges = gauges

    def retire(self, process: ProcessKey) -> None:
        """``process`` is gone (or about to be): its counts join its slot's retired totals."""
        proc = self._live.pop(process, None)
        self._closed.add(process)
        if proc is not None:
            for key, value in proc.counters.items():
                self._retire_value(proc.worker, key, value)

    def prune(self, alive: set[ProcessKey], keep: set[ProcessKey] | None = None) -> None:
        """Retire every read process not in ``alive`` (except ``keep``: a final read in flight)."""
        keep = keep or set()
        for process in [p for p in self._live if p not in alive and p not in keep]:
            self.retire(process)
        self._closed &= alive | keep

    def _retire_value(self, worker: int, key: SeriesKey, value: float) -> None:
        totals = self._retired.setdefault(worker, {})
        if key not in totals and len(totals) >= self.max_series:
            self.dropped += 1
            return
        totals[key] = totals.get(key, 0.0) + value

    def families(self, serving_generation: int | None) -> list[Metric]:
        """The merged families: counting series summed per slot, gauges from one process per
        slot (the serving generation's, else the newest read one)."""
        counts: dict[tuple[int, SeriesKey], float] = {}
        for worker, totals in self._retired.items():
            for key, value in totals.items():
                counts[(worker, key)] = value
        newest: dict[int, tuple[int, _Process]] = {}
        for (generation, worker, _pid), proc in self._live.items():
            for key, value in proc.counters.items():
                counts[(worker, key)] = counts.get((worker, key), 0.0) + value
            rank = (1 << 62) if generation == serving_generation else generation
            if worker not in newest or rank > newest[worker][0]:
                newest[worker] = (rank, proc)
        samples: dict[str, list[Sample]] = {}
        for (worker, (family, name, labels)), value in counts.items():
            samples.setdefault(family, []).append(_sample(name, labels, worker, value))
        for worker, (_rank, proc) in newest.items():
            for (family, name, labels), value in proc.gauges.items():
                samples.setdefault(family, []).append(_sample(name, labels, worker, value))
        out = []
        for family, found in sorted(samples.items()):
            kind, documentation = self._kinds.get(family, ("unknown", ""))
            metric = Metric(family, documentation, kind)
            metric.samples = sorted(
                found, key=lambda s: (s.labels[WORKER_LABEL], s.name, sorted(s.labels.items()))
            )
            out.append(metric)
        return out


def _relabel(labels: dict[str, str]) -> dict[str, str]:
    """A worker's own ``worker`` label becomes ``exported_worker``, as Prometheus does."""
    if WORKER_LABEL not in labels:
        return labels
    out = dict(labels)
    out["exported_" + WORKER_LABEL] = out.pop(WORKER_LABEL)
    return out


def _sample(name: str, labels: tuple[tuple[str, str], ...], worker: int, value: float) -> Sample:
    return Sample(name, {**dict(labels), WORKER_LABEL: str(worker)}, value)


def merge_families(own: Iterable[Metric], workers: Iterable[Metric]) -> list[Metric]:
    """The master's families with the workers' samples added to the family of the same name
    (a name the master has with another type keeps the master's, and the workers' is left out:
    one exposition cannot hold both)."""
    merged: dict[str, Metric] = {}
    for family in own:
        family = _as_text_format(family)
        merged[family.name] = family
    for family in workers:
        mine = merged.get(family.name)
        if mine is None:
            merged[family.name] = family
        elif mine.type == family.type:
            combined = Metric(mine.name, mine.documentation, mine.type)
            combined.samples = [*mine.samples, *family.samples]
            merged[family.name] = combined
    return list(merged.values())


def _as_text_format(family: Metric) -> Metric:
    """A family as the text format (and so the parser) names it: an info ``x`` is the gauge
    ``x_info``, a stateset a gauge of its name."""
    if family.type not in ("info", "stateset"):
        return family
    name = family.name + "_info" if family.type == "info" else family.name
    gauge = Metric(name, family.documentation, "gauge")
    gauge.samples = list(family.samples)
    return gauge
