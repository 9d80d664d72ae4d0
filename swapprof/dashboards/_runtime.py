"""The "swapprof — runtime" dashboard: what each generation costs while it serves.

Generations serve their metrics through the shared listener, so one scrape target (the app's
address) is answered by whichever generation serves; ``target_info`` of that same scrape carries
the ``swapprof_generation`` resource label, and joining on it splits the series per generation.
With ``--workers N`` that scrape hits one worker at random; the master's debug port serves every
worker's series with a ``worker`` label (counters continuous across replacements and upgrades),
and the "Workers" row reads those.
"""

from __future__ import annotations

from swapprof.dashboards._dashboard import dashboard
from swapprof.dashboards._panels import Json, heatmap, query, row, timeseries
from swapprof.dashboards._promql import GC_PAUSE_QUANTILES, RELOAD_GROWTH, events, quantile, scoped

UID = "swapprof-runtime"
TITLE = "swapprof \u2014 runtime"
RATE = "$__rate_interval"
GENERATION_INFO = scoped("target_info", 'swapprof_role="generation"')
PER_GENERATION = f"on (job, instance) group_left (swapprof_generation) {GENERATION_INFO}"
GENERATION_LEGEND = "gen {{swapprof_generation}} {{instance}}"
ANY_WORKER = 'worker!=""'  # a worker's series at the master's debug port (not the master's own)


def per_generation(expr: str) -> str:
    return f"{expr} * {PER_GENERATION}"


def _gc_quantile(q: str) -> str:
    return scoped(GC_PAUSE_QUANTILES, f'quantile="{q}"')


def _reloads() -> list[Json]:
    return [
        row("In-place reloads"),
        timeseries(
            "Memory growth per reload",
            "Retained bytes each reload adds (the slope of the leak verdict), per reloaded module.",
            [query(f"max by (instance, module) ({scoped(RELOAD_GROWTH)})", "{{module}} {{instance}}")],
            unit="bytes",
            width=8,
        ),
        timeseries(
            "Stale module versions",
            "Earlier versions of a reloaded module whose functions or classes are still alive.",
            [query(f"max by (instance, module) ({scoped('swapprof_reload_stale_versions')})", "{{module}}")],
            steps=True,
            width=8,
        ),
        timeseries(
            "Reloads by outcome",
            "ok, failed, or leaking (the reload succeeded and the verdict after it is leaking).",
            [
                query(
                    f"sum by (module, outcome) ({events(scoped('swapprof_reloads_total'), RATE)})",
                    "{{module}} {{outcome}}",
                )
            ],
            bars=True,
            stack=True,
            width=8,
        ),
    ]


def _gc() -> list[Json]:
    pauses = [
        query(
            f"max by (cpython_gc_generation) ({_gc_quantile(q)})",
            f"gen {{{{cpython_gc_generation}}}} p{name}",
        )
        for q, name in (("0.99", "99"), ("0.5", "50"))
    ]
    buckets = scoped("cpython_gc_duration_seconds_bucket")
    return [
        row("Garbage collector"),
        timeseries(
            "GC pause p99 by collector generation (5 m window)",
            "Every CPython collection's pause, timed by swapprof's GCMonitor; p50 for comparison.",
            pauses,
            unit="s",
        ),
        heatmap(
            "GC pauses",
            "How many collections paused how long, per interval (all collector generations).",
            query(f"sum by (le) (increase({buckets}[{RATE}]))", "{{le}}", heatmap=True),
        ),
        timeseries(
            "Collections per second",
            "cpython.gc.collections, per collector generation.",
            [
                query(
                    f"sum by (cpython_gc_generation) (rate({scoped('cpython_gc_collections_total')}[{RATE}]))",
                    "gen {{cpython_gc_generation}}",
                )
            ],
            unit="ops",
            width=8,
        ),
        timeseries(
            "Objects collected per second",
            "cpython.gc.collected_objects, per collector generation.",
            [
                query(
                    f"sum by (cpython_gc_generation) (rate({scoped('cpython_gc_collected_objects_total')}[{RATE}]))",
                    "gen {{cpython_gc_generation}}",
                )
            ],
            width=8,
        ),
        timeseries(
            "Uncollectable objects",
            "cpython.gc.uncollectable_objects since the generation started: should stay 0.",
            [
                query(
                    f"sum by (instance) ({scoped('cpython_gc_uncollectable_objects_total')})",
                    "{{instance}}",
                )
            ],
            width=8,
        ),
    ]


def _process() -> list[Json]:
    cpu = f"rate({scoped('process_cpu_seconds_total')}[{RATE}])"
    return [
        row("Process, per generation"),
        timeseries(
            "Resident memory",
            "RSS of the serving generation; a new line starts at each upgrade.",
            [query(per_generation(scoped("process_resident_memory_bytes")), GENERATION_LEGEND)],
            unit="bytes",
            width=8,
        ),
        timeseries(
            "Open file descriptors",
            "Should be flat across upgrades: the listeners are the same fds in every generation.",
            [query(per_generation(scoped("process_open_fds")), GENERATION_LEGEND)],
            width=8,
        ),
        timeseries(
            "CPU",
            "CPU seconds per second of the serving generation (1.0 = one core).",
            [query(per_generation(cpu), GENERATION_LEGEND)],
            unit="percentunit",
            width=8,
        ),
    ]


def _workers() -> list[Json]:
    by_worker = "instance, worker"
    legend = "worker {{worker}} {{instance}}"
    pauses = scoped("cpython_gc_duration_seconds_bucket", ANY_WORKER)
    cpu = f"rate({scoped('process_cpu_seconds_total', ANY_WORKER)}[{RATE}])"
    rss = scoped("process_resident_memory_bytes", ANY_WORKER)
    return [
        row("Workers (the master's /metrics)"),
        timeseries(
            "GC pause p99 by worker",
            "Every worker's GC pauses (all collector generations), from the master's debug port: "
            "one slow worker stands out here where the app port's scrape hits a random one.",
            [query(quantile(0.99, pauses, by_worker, RATE), legend)],
            unit="s",
            width=6,
        ),
        timeseries(
            "Resident memory by worker",
            "RSS of each worker of the serving generation (a gauge: the live process's value).",
            [query(f"max by ({by_worker}) ({rss})", legend)],
            unit="bytes",
            width=6,
        ),
        timeseries(
            "CPU by worker",
            "CPU seconds per second of each worker index (1.0 = one core); continuous across "
            "upgrades and replaced workers.",
            [query(f"sum by ({by_worker}) ({cpu})", legend)],
            unit="percentunit",
            width=6,
        ),
        timeseries(
            "Worker metric reads failed",
            "Reads of a worker's metrics by the master that timed out or failed (a wedged "
            "worker); the master then serves that worker's last read.",
            [
                query(
                    f"sum by ({by_worker}, reason) "
                    f"(increase({scoped('swapprof_worker_scrape_errors_total')}[{RATE}]))",
                    "worker {{worker}} {{reason}}",
                )
            ],
            bars=True,
            width=6,
        ),
    ]


def build() -> Json:
    return dashboard(
        UID,
        TITLE,
        "Each generation's reloads, memory growth, GC pauses, RSS, fds and CPU, from the metrics it "
        "serves on the app's listener (/metrics).",
        [*_reloads(), *_gc(), *_process(), *_workers()],
    )
