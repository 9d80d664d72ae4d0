"""What ``swapprof ctl`` prints: a master's status, an upgrade record, a reload result, as text."""

from __future__ import annotations

from typing import Any


def format_reload(result: dict[str, Any]) -> str:
    head = f"reload {result.get('id')} in generation {result.get('generation')}: {result.get('outcome')}"
    if result.get("outcome") != "ok":
        return f"{head} ({result.get('error')})"
    return (
        f"{head}, {', '.join(result.get('modules', []))} in {result.get('duration_ms', 0):.1f} ms; retained "
        f"{result.get('retained_bytes')} B; leaking={result.get('leaking')} "
        f"({result.get('bytes_per_reload', 0):.0f} B/reload over {result.get('reloads')}), "
        f"stale versions {result.get('stale_versions')}"
    )


def format_upgrade(record: dict[str, Any]) -> str:
    phases = "  ".join(f"{name} {ms:7.1f} ms" for name, ms in record.get("phases_ms", {}).items())
    head = f"upgrade {record.get('id')}: {record.get('outcome')}"
    if record.get("outcome") != "success":
        head += f" ({record.get('reason')}: {record.get('detail')})"
    how = record.get("spawn_mode", "exec")
    if how == "fork":
        how = "fork of the zygote" + (", from the waiting spare" if record.get("spare") else "")
    elif record.get("workers_forked"):
        how = f"exec, {record['workers_forked']} workers forked from its one import of the app"
    if record.get("fork_workers_refused"):
        how += f" (each worker exec'd: {record['fork_workers_refused']})"
    if record.get("zygote_error"):
        how += f" (zygote: {record['zygote_error']})"
    lines = [
        head,
        f"  generation {record.get('old_generation')} -> {record.get('new_generation')}, started by {how}",
        f"  {phases}",
    ]
    if record.get("time_to_ready_ms") is not None:
        lines.append(
            f"  time_to_ready {record['time_to_ready_ms']:.1f} ms, upgrade_total "
            f"{record.get('upgrade_total_ms') or 0:.1f} ms, service_gap {record.get('service_gap_ms') or 0:.1f} ms"
        )
    bake = record.get("bake")
    if bake:
        old, new = bake.get("old") or {}, bake.get("new") or {}
        lines.append(
            f"  bake {bake.get('window_s'):g} s: {bake.get('verdict')} after {bake.get('decided_ms', 0):.0f} ms"
            + (f" ({bake['detail']})" if bake.get("detail") else "")
        )
        for side, w in (("new", new), ("old", old)):
            lines.append(
                f"    {side}: {w.get('requests')} requests, {w.get('failed')} failed "
                f"({(w.get('error_ratio') or 0):.2%}), median {w.get('median_ms')} ms, p99 {w.get('p99_ms')} ms"
            )
        if bake.get("resumed_ms") is not None:
            lines.append(
                f"    the parked old generation accepted again {bake['resumed_ms']:.1f} ms after the switch"
            )
    if record.get("forced_kill"):
        lines.append(
            f"  the old generation did not finish draining in time and was killed (SIGKILL): {record.get('old_exit')}"
        )
    if record.get("coalesced"):
        lines.append(f"  coalesced {record['coalesced']} further request(s)")
    if record.get("tail"):
        lines.append("  last output of the new generation:")
        lines.extend(f"  | {line}" for line in record["tail"])
    return "\n".join(lines)


def _mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}M"


def format_status(status: dict[str, Any]) -> str:
    lines = [
        f"master pid {status['master_pid']}, up {status['uptime_s']:.0f} s, listening on {', '.join(status['addresses'])}",
        f"{'GEN':>4} {'W':>3} {'PID':>8} {'STATE':<9} {'UPTIME':>9} {'CONNS':>6} {'FDS':>5} "
        f"{'RSS':>8} {'PSS':>8}",
    ]
    for gen in status["generations"]:
        fds = "-" if gen["fds"] is None else str(gen["fds"])
        lines.append(
            f"{gen['generation']:>4} {gen.get('worker', 0):>3} {gen['pid']:>8} {gen['state']:<9} "
            f"{gen['uptime_s']:>8.1f}s {gen['connections']:>6} {fds:>5} "
            f"{_mib(gen.get('rss_kb')):>8} {_mib(gen.get('pss_kb')):>8}"
        )
    zygote = status.get("zygote")
    if zygote:
        spare = f"spare pid {zygote['spare_pid']} waiting" if zygote.get("spare_pid") else "no spare waiting"
        memory = f"RSS {_mib(zygote.get('rss_kb'))} PSS {_mib(zygote.get('pss_kb'))}"
        if zygote.get("spare_pid"):
            memory += f", spare RSS {_mib(zygote.get('spare_rss_kb'))} PSS {_mib(zygote.get('spare_pss_kb'))}"
        lines.append(f"zygote {zygote['serial']} pid {zygote['pid']}; {spare}; {memory}")
        preload = zygote.get("preload") or {}
        if preload.get("mode") == "auto":
            dropped = preload.get("dropped") or {}
            reasons: dict[str, int] = {}
            for why in dropped.values():
                reasons[why.get("reason", "?")] = reasons.get(why.get("reason", "?"), 0) + 1
            why = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
            lines.append(
                f"preload auto: {preload.get('learned_loaded', 0)} learned modules in the zygote "
                f"(of {preload.get('learned', 0)} learned), {len(dropped)} dropped"
                + (f" ({why})" if why else "")
                + (f", {preload['code_held']} held as bytecode" if preload.get("code_held") else "")
                + ("; learning" if preload.get("learning") else "")
            )
            lines.extend(
                f"  dropped {name}: {w.get('reason')}: {w.get('detail')}"
                for name, w in sorted(dropped.items())
            )
    totals = ", ".join(f"{k}={v}" for k, v in sorted(status["upgrades_total"].items())) or "none"
    lines.append(
        f"upgrades: {totals}; forced kills {status['forced_kills']}; "
        f"worker restarts {status.get('worker_restarts', 0)}"
    )
    return "\n".join(lines)
