"""Per-phase medians of two runs, which phase moved, and what differs in how they were run."""

from __future__ import annotations

import json
import statistics
from typing import Any

from swapprof._vocabulary import AFTER_READY, GAP, SUCCESS, phase_rank

COMPARED_CONFIG = ("upgrades", "interval_s", "warmup_s", "load")


def phase_medians(doc: dict[str, Any]) -> dict[str, float]:
    """Median duration of each phase over the successful upgrades, in canonical order."""
    names = {p for u in doc["upgrades"] if u["outcome"] == SUCCESS for p in u.get("phases_ms") or {}}
    values = {name: phase_samples(doc, name) for name in names}
    return {p: statistics.median(values[p]) for p in sorted(values, key=phase_rank) if values[p]}


def phase_samples(doc: dict[str, Any], phase: str) -> list[float]:
    """``phase``'s duration in each successful upgrade that has it, in upgrade order. A record
    leaves ``gap`` out when there was none: its ``service_gap_ms`` (0) stands in then."""
    found: list[float] = []
    for upgrade in doc["upgrades"]:
        if upgrade["outcome"] != SUCCESS:
            continue
        value = (upgrade.get("phases_ms") or {}).get(phase)
        if value is None and phase == GAP:
            value = upgrade.get("service_gap_ms")
        if isinstance(value, int | float):
            found.append(value)
    return found


def phase_table(base: dict[str, Any], cur: dict[str, Any]) -> list[tuple[str, float | None, float | None]]:
    b, c = phase_medians(base), phase_medians(cur)
    names = list(dict.fromkeys([*b, *c]))
    return [(name, b.get(name), c.get(name)) for name in names]


def phase_changes(base: dict[str, Any], cur: dict[str, Any], top: int = 3) -> list[str]:
    """The phases up to READY whose medians moved most, largest first (names time_to_ready's cause)."""
    b, c = phase_medians(base), phase_medians(cur)
    rows = [(name, b[name], c[name]) for name in b if name in c and name not in AFTER_READY]
    rows.sort(key=lambda row: abs(row[2] - row[1]), reverse=True)
    return [
        f"phase {name}: median {old:.1f} -> {new:.1f} ms ({new - old:+.1f} ms)"
        for name, old, new in rows[:top]
    ]


def _same(a: object, b: object) -> bool:
    """Equal as JSON (a fresh document's tuples are a loaded one's lists)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def config_notes(base: dict[str, Any], cur: dict[str, Any]) -> list[str]:
    """Differences in how the two runs were made: worth knowing before trusting a comparison."""
    notes = []
    for key in COMPARED_CONFIG:
        if not _same(base["config"].get(key), cur["config"].get(key)):
            notes.append(
                f"config.{key} differs: baseline {base['config'].get(key)!r}, current {cur['config'].get(key)!r}"
            )
    for key in ("kind", "app", "cmd"):
        if not _same(base["target"].get(key), cur["target"].get(key)):
            notes.append(
                f"target.{key} differs: baseline {base['target'].get(key)!r}, current {cur['target'].get(key)!r}"
            )
    for key in ("cpus", "python", "platform"):
        if not _same(base["machine"].get(key), cur["machine"].get(key)):
            notes.append(
                f"machine.{key} differs: baseline {base['machine'].get(key)!r}, current {cur['machine'].get(key)!r}"
            )
    return notes
