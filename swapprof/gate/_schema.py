"""The bench results document (``"schema": "swapprof.bench/1"``): reading and checking it.

A document is checked before the gate trusts it: a malformed file, another schema or a missing
field raises ``ConfigError`` naming the file and the field, so the CLI exits 2 with a message.

Fields the gate and the reports rely on (the rest is informative; see ``_bench.py``)::

    schema       "swapprof.bench/1"
    machine      {python, platform, cpus, loadavg, versions: {dist: version}, ...}
    target       {kind: "reference" | "command", ...}
    config       {upgrades, interval_s, warmup_s, load: {...}}
    upgrades     [{index, outcome, reason, source: "server" | "client", start_s, end_s,
                   phases_ms: {phase: ms}, time_to_ready_ms, upgrade_total_ms, latency_ms, errors}]
    samples      {time_to_ready_ms: [..], upgrade_total_ms: [..], upgrade_p99_ms: [..],
                  yardstick_ms: [..], time_to_ready_norm: [..] (time_to_ready / yardstick), ...}
    latency_ms   {steady: {n, mean, p50, p90, p99, max}, upgrade: {...}}
    errors       {refused, reset, closed, timeout, http_5xx, malformed: count}
    generations  [{generation, pids, fds, rss_kb}]
    timeline     {bucket_s, t_s: [..], n: [..], p50_ms: [..], p99_ms: [..], max_ms: [..], errors: [..]}
    requests     {total, steady, upgrade, by_status: {status: count}, retried}
    requests_raw [[start_ms, duration_ms, path, status, error, reused, retried], ..] (--keep-requests)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from swapprof._errors import ConfigError

SCHEMA = "swapprof.bench/1"
SCHEMA_FAMILY = "swapprof.bench/"
REQUIRED_SAMPLES = ("time_to_ready_ms", "upgrade_total_ms", "upgrade_p99_ms")
SECTIONS: dict[str, type] = {
    "machine": dict,
    "target": dict,
    "config": dict,
    "upgrades": list,
    "samples": dict,
    "latency_ms": dict,
    "errors": dict,
}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate(doc: object, source: str = "results") -> dict[str, Any]:
    """Return ``doc`` if it is a ``swapprof.bench/1`` document; else raise ConfigError."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a JSON object, found {type(doc).__name__}")
    schema = doc.get("schema")
    if schema is None:
        raise ConfigError(f'{source}: not a swapprof bench result (no "schema" field)')
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith(SCHEMA_FAMILY):
            raise ConfigError(
                f"{source}: unsupported schema {schema!r} (written by another swapprof version); "
                f"this swapprof reads {SCHEMA!r}"
            )
        raise ConfigError(f"{source}: schema {schema!r} is not a swapprof bench result; expected {SCHEMA!r}")
    for name, kind in SECTIONS.items():
        if not isinstance(doc.get(name), kind):
            raise ConfigError(
                f"{source}: field {name!r} must be a JSON {'object' if kind is dict else 'array'}"
            )
    for name in dict.fromkeys([*REQUIRED_SAMPLES, *doc["samples"]]):
        values = doc["samples"].get(name)
        if not isinstance(values, list) or not all(_number(v) for v in values):
            raise ConfigError(f"{source}: field 'samples.{name}' must be an array of numbers")
    for kind, count in doc["errors"].items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ConfigError(f"{source}: field 'errors.{kind}' must be a count, found {count!r}")
    for i, upgrade in enumerate(doc["upgrades"]):
        if not isinstance(upgrade, dict) or not isinstance(upgrade.get("outcome"), str):
            raise ConfigError(f"{source}: upgrades[{i}] must be an object with an 'outcome'")
        if not isinstance(upgrade.get("phases_ms", {}), dict):
            raise ConfigError(f"{source}: field 'upgrades[{i}].phases_ms' must be an object")
    return doc


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and validate a results file; every failure is a ConfigError with the reason."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read it ({exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    return validate(doc, source)


def write_results(doc: dict[str, Any], path: str | Path) -> None:
    """Write ``doc`` (validated first, so a bench never writes what the gate would refuse)."""
    validate(doc, str(path))
    target = Path(path)
    if target.parent != Path():
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(target)
