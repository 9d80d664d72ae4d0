"""The words every part of swapprof shares: upgrade phases, outcomes, reason codes, triggers.

They are stable names: span names, metric labels, bench output, dashboards, alert rules and the
CI gate depend on them. This module is the only place they are spelled out; the server, the
upgrade recorder and the rest of the telemetry, the gate and the demo import them from here.

Phases of one upgrade (``DISPLAY_ORDER`` is the order reports draw them in)::

    requested -> [zygote] -> spawn -> import -> ready -> switch -> drain -> [bake] -> exit
                                                  `-> rollback (any failure before the switch,
                                                      or a failed bake verdict)

``zygote`` appears only when a stale fork server had to be replaced before the spawn; ``bake``
only with ``--bake-window``: the old generation is parked (alive, not accepting) while the new
one's requests are judged; it begins when the old stopped accepting, so the drain overlaps it.
``gap`` appears only in servers that stop the old workers before the new ones can serve
(gunicorn's HUP, seen through ``swapprof.integrations``): from the last old worker told to stop
to the first new worker serving, the time no worker accepted (``service_gap``).
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- phases
REQUESTED: Final = "requested"
ZYGOTE: Final = "zygote"
SPAWN: Final = "spawn"
IMPORT: Final = "import"
READY: Final = "ready"
SWITCH: Final = "switch"
DRAIN: Final = "drain"
EXIT: Final = "exit"
BAKE: Final = "bake"
ROLLBACK: Final = "rollback"
GAP: Final = "gap"

PHASES: Final = (REQUESTED, SPAWN, IMPORT, READY, SWITCH, DRAIN, BAKE, EXIT, ROLLBACK)
"""The canonical phases, in the order an upgrade passes them."""
DISPLAY_ORDER: Final = (REQUESTED, ZYGOTE, SPAWN, IMPORT, READY, SWITCH, GAP, DRAIN, BAKE, EXIT, ROLLBACK)
"""Every phase name, in the order reports and charts show them."""
ALL_PHASES: Final = frozenset(DISPLAY_ORDER)
NEW_GENERATION_PHASES: Final = (IMPORT, READY)
"""Phases the new generation records itself (its own spans)."""
OLD_GENERATION_PHASES: Final = (SWITCH, DRAIN, EXIT)
"""Phases the old generation records itself."""
AFTER_READY: Final = (SWITCH, GAP, DRAIN, BAKE, EXIT, ROLLBACK)
"""Phases that do not count towards time_to_ready (``gap`` overlaps import and ready)."""

PHASE_COLOURS: Final = {
    REQUESTED: "#9aa5b1", ZYGOTE: "#b197fc", SPAWN: "#4dabf7", IMPORT: "#15aabf", READY: "#40c057",
    SWITCH: "#fab005", GAP: "#e64980", DRAIN: "#fd7e14", BAKE: "#e8590c", EXIT: "#868e96",
    ROLLBACK: "#fa5252",
}  # fmt: skip
OTHER_COLOUR: Final = "#adb5bd"


def phase_rank(name: str) -> int:
    """Position of ``name`` in ``DISPLAY_ORDER``; unknown names sort last."""
    try:
        return DISPLAY_ORDER.index(name)
    except ValueError:
        return len(DISPLAY_ORDER)


def check_phase(name: str) -> str:
    """Return ``name`` if it is a phase; raise ValueError naming the known ones otherwise."""
    if name not in ALL_PHASES:
        raise ValueError(f"unknown phase {name!r}; phases are {', '.join(DISPLAY_ORDER)}")
    return name


# ---------------------------------------------------------------- outcomes
SUCCESS: Final = "success"
ROLLED_BACK: Final = "rolled_back"
CANCELLED: Final = "cancelled"
OUTCOMES: Final = (SUCCESS, ROLLED_BACK, CANCELLED)

# ---------------------------------------------------------------- reason codes
REASON_OK: Final = "ok"
REASON_SPAWN_FAILED: Final = "spawn_failed"
REASON_IMPORT_ERROR: Final = "import_error"
REASON_APP_INVALID: Final = "app_invalid"
REASON_LIFESPAN_FAILED: Final = "lifespan_failed"
REASON_PROBE_FAILED: Final = "probe_failed"
REASON_EXITED: Final = "exited_before_ready"
REASON_CRASHED: Final = "crashed_before_ready"
REASON_READY_TIMEOUT: Final = "ready_timeout"
REASON_STOPPING: Final = "master_stopping"
REASON_COALESCED: Final = "coalesced"
REASON_BAKE_ERRORS: Final = "bake_errors"
REASON_BAKE_LATENCY: Final = "bake_latency"
ROLLBACK_REASONS: Final = (
    REASON_SPAWN_FAILED,
    REASON_IMPORT_ERROR,
    REASON_APP_INVALID,
    REASON_LIFESPAN_FAILED,
    REASON_PROBE_FAILED,
    REASON_EXITED,
    REASON_CRASHED,
    REASON_READY_TIMEOUT,
    REASON_BAKE_ERRORS,
    REASON_BAKE_LATENCY,
)
"""The reasons an upgrade can roll back with (each a series of ``swapprof.upgrades`` from the start)."""
REASONS: Final = (REASON_OK, *ROLLBACK_REASONS, REASON_STOPPING, REASON_COALESCED)

# ---------------------------------------------------------------- bake verdicts
BAKE_PASS: Final = "pass"
BAKE_FAIL: Final = "fail"
BAKE_TOO_LITTLE_TRAFFIC: Final = "too_little_traffic"
BAKE_OLD_GONE: Final = "old_gone"
BAKE_VERDICTS: Final = (BAKE_PASS, BAKE_FAIL, BAKE_TOO_LITTLE_TRAFFIC, BAKE_OLD_GONE)
"""How a bake ended (label ``verdict`` of ``swapprof.bake.verdicts``): passed, failed (rolled back
with ``bake_errors`` or ``bake_latency``), too little traffic to judge (passed by the policy), or
the parked old generation died (nothing to roll back to: the new one stays)."""
BAKE_LOW_TRAFFIC_POLICIES: Final = ("pass", "extend")

# ---------------------------------------------------------------- --preload auto
DROP_IMPORT_FAILED: Final = "import_failed"
DROP_THREAD: Final = "thread"
DROP_OPEN_FDS: Final = "open_fds"
DROP_APP_CODE: Final = "app_code"
DROP_REASONS: Final = (DROP_IMPORT_FAILED, DROP_THREAD, DROP_OPEN_FDS, DROP_APP_CODE)
"""Why a learned module was dropped from the zygote's preload (label ``reason`` of
``swapprof.zygote.preload.dropped``). Only a failed import is undone by Python: the zygote's
bytecode of such a module is still held (``server.zygote._bytecode``)."""

# ---------------------------------------------------------------- the run directory
ENV_RUN_DIR: Final = "SWAPPROF_RUN_DIR"
DEFAULT_RUN_DIR: Final = ".swapprof"
"""Where a master (or an integration) keeps its state, records and span file; every command
that reads one takes ``--run-dir``, then ``$SWAPPROF_RUN_DIR``, then this."""

# ---------------------------------------------------------------- triggers
TRIGGER_STARTUP: Final = "startup"
TRIGGER_SIGNAL: Final = "signal"
TRIGGER_CTL: Final = "ctl"
TRIGGER_RECOVERY: Final = "recovery"
TRIGGER_API: Final = "api"
TRIGGERS: Final = (TRIGGER_STARTUP, TRIGGER_SIGNAL, TRIGGER_CTL, TRIGGER_RECOVERY, TRIGGER_API)
