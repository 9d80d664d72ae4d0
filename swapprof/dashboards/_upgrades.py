"""The "swapprof — upgrades" dashboard: the master's view of every hot upgrade."""

from __future__ import annotations

from swapprof.dashboards._dashboard import dashboard
from swapprof.dashboards._panels import Json, bargauge, query, row, stat, timeseries
from swapprof.dashboards._promql import (
    PHASE_MEAN,
    PHASE_QUANTILES,
    TIME_TO_READY_QUANTILES,
    events,
    scoped,
)

UID = "swapprof-upgrades"
TITLE = "swapprof \u2014 upgrades"
RATE = "$__rate_interval"
UPGRADES = scoped("swapprof_upgrades_total")
ROLLBACKS = scoped("swapprof_upgrades_total", 'outcome="rolled_back"')
GENERATION = scoped("swapprof_generation")
ALIVE = scoped("swapprof_generations_alive")
FORCED_KILLS = scoped("swapprof_forced_kills_total")
TTR_COUNT = scoped("swapprof_upgrade_time_to_ready_seconds_count")
BAKE_VERDICTS = scoped("swapprof_bake_verdicts_total")


def _overview() -> list[Json]:
    return [
        row("Now"),
        stat(
            "Serving generation",
            "The generation number the master serves with; it goes up by one at each successful upgrade.",
            [query(f"max by (job, instance) ({GENERATION})", "{{instance}}")],
        ),
        stat(
            "Upgrades since the master started",
            "Counts by outcome; the master's counters restart at 0 when the master itself restarts.",
            [query(f"sum by (outcome) ({UPGRADES})", "{{outcome}}")],
        ),
        stat(
            "Generations alive",
            "More than one for longer than an upgrade takes means an old generation is stuck draining.",
            [query(f"max by (job, instance) ({ALIVE})", "{{instance}}")],
        ),
        stat(
            "Forced kills since the master started",
            "Old generations SIGKILLed because they did not exit after draining.",
            [query(f"sum({FORCED_KILLS}) or vector(0)", "forced kills")],
        ),
    ]


def _upgrades() -> list[Json]:
    ttr = [
        query(scoped(TIME_TO_READY_QUANTILES, f'quantile="{q}"'), f"p{name} {{{{instance}}}}")
        for q, name in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))
    ]
    return [
        row("Upgrades"),
        timeseries(
            "Upgrades by outcome",
            "Upgrades that ended in each interval: success, rolled_back or cancelled.",
            [query(f"sum by (outcome) ({events(UPGRADES, RATE)})", "{{outcome}}")],
            bars=True,
            stack=True,
        ),
        timeseries(
            "Rollbacks by reason",
            "Why new generations were rolled back: import_error, probe_failed, ready_timeout, ...",
            [query(f"sum by (reason) ({events(ROLLBACKS, RATE)})", "{{reason}}")],
            bars=True,
            stack=True,
        ),
        timeseries(
            "Bake verdicts",
            "With --bake-window: how each bake ended. fail = rolled back to the parked old generation "
            "(bake_errors or bake_latency under Rollbacks by reason); too_little_traffic = passed "
            "without enough requests to judge; old_gone = the parked generation died.",
            [query(f"sum by (verdict) ({events(BAKE_VERDICTS, RATE)})", "{{verdict}}")],
            bars=True,
            stack=True,
        ),
        timeseries(
            "Upgrades by spawn mode",
            "How each new generation started: fork (from the zygote, --preload) or exec (a fresh "
            "interpreter). exec on a server with --preload means the zygote was unavailable.",
            [query(f"sum by (spawn_mode) ({events(TTR_COUNT, RATE)})", "{{spawn_mode}}")],
            bars=True,
            stack=True,
        ),
        timeseries(
            "time_to_ready p50 / p95 / p99 (1 h window)",
            "From the upgrade request to the new generation's READY, over the upgrades of the "
            "preceding hour (recording rules in dashboards/rules.yml).",
            ttr,
            unit="s",
        ),
    ]


def _phases() -> list[Json]:
    phase_sum = scoped("swapprof_upgrade_phase_duration_seconds_sum")
    phase_count = scoped("swapprof_upgrade_phase_duration_seconds_count")
    phase_p95 = scoped(PHASE_QUANTILES, 'quantile="0.95"')
    return [
        row("Phases"),
        timeseries(
            "Phase duration breakdown (mean, 1 h window)",
            "requested -> spawn -> import -> ready -> switch -> drain -> exit, stacked: where an "
            "upgrade's time goes. rollback appears when upgrades failed.",
            [query(f"avg by (phase) ({scoped(PHASE_MEAN)})", "{{phase}}")],
            unit="s",
            stack=True,
        ),
        timeseries(
            "Phase p95 (1 h window)",
            "The slowest instance's 95th percentile of each phase.",
            [query(f"max by (phase) ({phase_p95})", "{{phase}}")],
            unit="s",
        ),
        bargauge(
            "Mean phase duration over the selected time range",
            "Sum of phase durations over their count, for the dashboard's whole time range.",
            [
                query(
                    f"sum by (phase) (increase({phase_sum}[$__range]))"
                    f" / sum by (phase) (increase({phase_count}[$__range]))",
                    "{{phase}}",
                    instant=True,
                )
            ],
            unit="s",
        ),
    ]


def _generations() -> list[Json]:
    return [
        row("Generations and drain"),
        timeseries(
            "Serving generation",
            "The restart signal: an exec keeps the PID and the process start time, the generation changes.",
            [query(f"max by (job, instance) ({GENERATION})", "{{job}} {{instance}}")],
            steps=True,
            width=6,
        ),
        timeseries(
            "Generations alive",
            "Two during an upgrade's overlap, one otherwise.",
            [query(f"max by (job, instance) ({ALIVE})", "{{instance}}")],
            steps=True,
            width=6,
        ),
        timeseries(
            "Draining connections",
            "Connections the old generation still serves after the switch.",
            [query(f"sum by (job, instance) ({scoped('swapprof_drain_connections')})", "{{instance}}")],
            width=6,
        ),
        timeseries(
            "Forced kills",
            "Old generations SIGKILLed after the drain timeout.",
            [query(f"sum by (job, instance) ({events(FORCED_KILLS, RATE)})", "{{instance}}")],
            bars=True,
            width=6,
        ),
    ]


def build() -> Json:
    return dashboard(
        UID,
        TITLE,
        "Hot upgrades of swapprof's reference server: outcomes, rollbacks, time_to_ready and phases, "
        "from the master's metrics (its debug address /metrics).",
        [*_overview(), *_upgrades(), *_phases(), *_generations()],
    )
