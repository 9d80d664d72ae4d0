"""PromQL shared by the dashboards and the rules: selectors, event counts, recording rule names.

Metric names are the Prometheus translation of the OTel names in DESIGN.md (unit suffixed,
counters ``_total``); swapprof's own series also carry ``otel_scope_*`` labels, so every
aggregation names the labels it keeps.
"""

from __future__ import annotations

#: the dashboards' template variables, as a label matcher list
SCOPE = 'job=~"$job", instance=~"$instance"'

# recording rules (level:metric:operations); the dashboards read these, the alerts too
TIME_TO_READY_QUANTILES = "job_instance:swapprof_upgrade_time_to_ready_seconds:quantile_1h"
PHASE_QUANTILES = "job_instance_phase:swapprof_upgrade_phase_duration_seconds:quantile_1h"
PHASE_MEAN = "job_instance_phase:swapprof_upgrade_phase_duration_seconds:mean_1h"
GC_PAUSE_QUANTILES = "job_instance_gc_generation:cpython_gc_duration_seconds:quantile_5m"
RELOAD_GROWTH = "job_instance_module:swapprof_reload_memory_growth_bytes:slope"


def scoped(metric: str, *matchers: str) -> str:
    """``metric{matchers..., job=~"$job", instance=~"$instance"}``."""
    return f"{metric}{{{', '.join((*matchers, SCOPE))}}}"


def events(series: str, window: str, *, known_for: str = "", sep: str = " ") -> str:
    """How many times a counter went up within ``window``, counting a series' first appearance.

    swapprof's counters appear at their first increment (the OTel exporter has no zero series),
    and ``increase()`` needs two samples and extrapolates, so it misses a series' first events:
    a rollback reason seen once would never show. A series that did not exist ``window`` ago
    counts with its whole value (every event since it appeared); the others through increase().
    ``known_for``: a selector that must have existed ``window`` ago for the same job and instance,
    so a Prometheus that just started (or a new target) does not take old counts for new events.
    """
    new = f"{series} unless {series} offset {window}"
    if known_for:
        new = f"({new}) and on (job, instance) ({known_for} offset {window})"
    return f"({new}){sep}or{sep}(increase({series}[{window}]) > 0)"


def quantile(q: float, bucket: str, by: str, window: str, offset: str = "") -> str:
    shift = f" offset {offset}" if offset else ""
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({bucket}[{window}]{shift})))"
