"""Prometheus recording rules (the quantiles the dashboards plot) and alerting rules.

Written as data here and rendered to ``dashboards/rules.yml``; ``dashboards/rules_test.yml``
holds promtool unit tests for every alert.
"""

from __future__ import annotations

from swapprof.dashboards._panels import Json
from swapprof.dashboards._promql import (
    GC_PAUSE_QUANTILES,
    PHASE_MEAN,
    PHASE_QUANTILES,
    RELOAD_GROWTH,
    TIME_TO_READY_QUANTILES,
    events,
    quantile,
)

TTR_BUCKET = "swapprof_upgrade_time_to_ready_seconds_bucket"
TTR_COUNT = "swapprof_upgrade_time_to_ready_seconds_count"
PHASE = "swapprof_upgrade_phase_duration_seconds"
GC_BUCKET = "cpython_gc_duration_seconds_bucket"
GROWTH = "swapprof_reload_memory_growth_bytes"
SCRAPE_ERRORS = "swapprof_worker_scrape_errors_total"
#: exists in every swapprof process: "this target was already scraped a while ago"
KNOWN = "swapprof_generation"

LEAK_BYTES_PER_RELOAD = 65536
GC_PAUSE_P99_SECONDS = 0.1
TTR_REGRESSION_RATIO = 1.5
TTR_FLOOR_SECONDS = 0.5
SCRAPE_ERRORS_PER_10M = 2


def _quantiles(record: str, bucket: str, by: str, window: str, qs: tuple[str, ...]) -> list[Json]:
    return [
        {"record": record, "expr": quantile(float(q), bucket, by, window), "labels": {"quantile": q}}
        for q in qs
    ]


def recording_rules() -> list[Json]:
    growth = (
        f"max by (job, instance, module) ({GROWTH})\n"
        "or\n"
        f"max by (job, instance, module) (rate({GROWTH}_sum[1h]) / rate({GROWTH}_count[1h]))\n"
    )
    return [
        *_quantiles(TIME_TO_READY_QUANTILES, TTR_BUCKET, "job, instance", "1h", ("0.5", "0.95", "0.99")),
        *_quantiles(PHASE_QUANTILES, f"{PHASE}_bucket", "job, instance, phase", "1h", ("0.5", "0.95")),
        {
            "record": PHASE_MEAN,
            "expr": f"sum by (job, instance, phase) (rate({PHASE}_sum[1h]))\n"
            f"/\nsum by (job, instance, phase) (rate({PHASE}_count[1h]))\n",
        },
        *_quantiles(
            GC_PAUSE_QUANTILES, GC_BUCKET, "job, instance, cpython_gc_generation", "5m", ("0.5", "0.99")
        ),
        # a gauge today; the histogram branch keeps the rule working if it becomes one
        {"record": RELOAD_GROWTH, "expr": growth},
    ]


def _alert(name: str, expr: str, wait: str, summary: str, description: str) -> Json:
    rule: Json = {"alert": name, "expr": expr}
    if wait:
        rule["for"] = wait
    rule["labels"] = {"severity": "warning"}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def _sum_events(by: str, series: str, window: str) -> str:
    inner = events(series, window, known_for=KNOWN, sep="\n  ")
    return f"sum by ({by}) (\n  {inner}\n) > 0\n"


def alerting_rules() -> list[Json]:
    p95 = f'{TIME_TO_READY_QUANTILES}{{quantile="0.95"}}'
    day_before = quantile(0.95, TTR_BUCKET, "job, instance", "1h", offset="1d")
    return [
        _alert(
            "SwapprofUpgradeRolledBack",
            _sum_events("job, instance, reason", 'swapprof_upgrades_total{outcome="rolled_back"}', "10m"),
            "",
            "swapprof rolled back an upgrade on {{ $labels.instance }} ({{ $labels.reason }})",
            "The new generation failed ({{ $labels.reason }}); the old one kept serving. "
            "`swapprof ctl upgrade --wait` prints the new generation's last output.",
        ),
        _alert(
            "SwapprofBakeFailing",
            'sum by (job, instance) (\n  increase(swapprof_bake_verdicts_total{verdict="fail"}[1h])\n) >= 3\n',
            "",
            "Bakes on {{ $labels.instance }} keep failing: 3 or more rolled back within an hour",
            "New generations keep regressing in their bake window and are rolled back to the parked "
            "old one (reasons bake_errors / bake_latency): the code on disk is bad, or the rules are "
            "too strict. `swapprof ctl upgrade --wait --json` shows the evidence.",
        ),
        _alert(
            "SwapprofTimeToReadyRegression",
            f"{p95} > {TTR_FLOOR_SECONDS}\n"
            f"and on (job, instance)\n"
            f"{p95} > on (job, instance) {TTR_REGRESSION_RATIO} * {day_before}\n",
            "5m",
            "swapprof upgrades on {{ $labels.instance }} get ready slower than a day ago",
            f"time_to_ready p95 over the last hour is {{{{ $value | humanizeDuration }}}}, more than "
            f"{TTR_REGRESSION_RATIO}x the same hour yesterday (and above {TTR_FLOOR_SECONDS} s).",
        ),
        _alert(
            "SwapprofReloadMemoryLeak",
            f"{RELOAD_GROWTH} > {LEAK_BYTES_PER_RELOAD}\n",
            "15m",
            "Reloading {{ $labels.module }} on {{ $labels.instance }} leaks memory",
            "Each reload retains {{ $value | humanize1024 }}B more (the slope of the reload "
            "tracker's leak verdict); /debug/swapprof/reloads names what keeps old versions alive.",
        ),
        _alert(
            "SwapprofOldGenerationStuckDraining",
            "max by (job, instance) (swapprof_generations_alive) > 1\n",
            "10m",
            "An old swapprof generation on {{ $labels.instance }} has not exited for 10 minutes",
            "{{ $value }} generations alive: an old one has not exited since an upgrade. "
            "`swapprof ctl status` shows its connections; check --drain-timeout.",
        ),
        _alert(
            "SwapprofForcedKill",
            _sum_events("job, instance", "swapprof_forced_kills_total", "15m"),
            "",
            "swapprof SIGKILLed an old generation on {{ $labels.instance }}",
            "An old generation did not exit within --drain-timeout after the switch; requests "
            "it still served were cut off.",
        ),
        _alert(
            "SwapprofZygoteFallback",
            _sum_events("job, instance", f'{TTR_COUNT}{{spawn_mode="exec"}}', "15m")
            + "and on (job, instance)\n"
            + f'max by (job, instance) (max_over_time({TTR_COUNT}{{spawn_mode="fork"}}[1d])) > 0\n',
            "",
            "swapprof on {{ $labels.instance }} started a generation by exec, not from its zygote",
            "Upgrades here forked from the zygote (--preload) within the last day, and now one "
            "exec'd a fresh interpreter: the zygote refused or died (the master's log says why), "
            "and upgrades are an interpreter start slower until it is back.",
        ),
        _alert(
            "SwapprofGCPauseHigh",
            f'{GC_PAUSE_QUANTILES}{{quantile="0.99"}} > {GC_PAUSE_P99_SECONDS}\n',
            "10m",
            "GC pauses of collector generation {{ $labels.cpython_gc_generation }} on "
            "{{ $labels.instance }} are long",
            "p99 GC pause over 5 minutes is {{ $value | humanizeDuration }} "
            f"(threshold {GC_PAUSE_P99_SECONDS} s); every request in flight waits for it.",
        ),
        _alert(
            "SwapprofWorkerMetricsUnreadable",
            f"sum by (job, instance, worker) (increase({SCRAPE_ERRORS}[10m])) > {SCRAPE_ERRORS_PER_10M}\n",
            "10m",
            "The swapprof master on {{ $labels.instance }} cannot read worker {{ $labels.worker }}'s metrics",
            "Reads of worker {{ $labels.worker }}'s metrics keep failing (timeouts: a wedged worker, "
            "its event loop blocked); the master serves its last read, so its counters stand still. "
            "/debug/pprof/goroutine?debug=2&worker={{ $labels.worker }} on the master's debug port "
            "shows what it is doing.",
        ),
    ]


def build() -> Json:
    return {
        "groups": [
            {"name": "swapprof.recording", "rules": recording_rules()},
            {"name": "swapprof.alerts", "rules": alerting_rules()},
        ]
    }
