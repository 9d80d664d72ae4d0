"""How the master starts a generation: a fork of the zygote when there is a healthy one,
otherwise a fresh interpreter (exec); and how it starts and replaces the zygote."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from swapprof.server._generation import Generation
from swapprof.server._libc import libc
from swapprof.server._spawn import SpawnError
from swapprof.server._strays import StrayReaper
from swapprof.server._upgrade import UpgradeRecord
from swapprof.server._zygote_client import Zygote, ZygoteError, start_generation_forked

if TYPE_CHECKING:
    from swapprof.server._master import Master

PR_SET_CHILD_SUBREAPER = 36


async def spawn(
    master: Master, record: UpgradeRecord, new: Generation, env: dict[str, str], spawn_at: int
) -> int:
    """Start ``new`` by forking the zygote, else by exec; record ``requested`` (and ``zygote``
    when a stale zygote had to be replaced first). Return when the spawn phase began."""
    record.info["spawn_mode"] = "exec"
    if master.zygote is not None and master._lifeline is not None:
        fork_env = {
            **env,
            "LISTEN_FDS": str(len(master.listeners)),  # the zygote holds them at fds 3.., as we passed them
            "LISTEN_FDNAMES": ":".join(master.names),
            "SWAPPROF_LIFELINE_FD": str(3 + len(master.listeners) + 1),
        }
        for attempt in (1, 2):
            spare, master.spare = master.spare, None
            try:
                if await start_generation_forked(new, master.zygote, fork_env, spare):
                    record.info["spare"] = True
                    master.spares.discard(spare)  # a generation now
                record.info["spawn_mode"] = "fork"
                record.phase("requested", record.requested_ns, spawn_at)
                return spawn_at
            except ZygoteError as exc:
                if spare is not None:
                    spare.discard()  # forked from a zygote that now refuses: not to be used
                if exc.kind == "stale" and attempt == 1:
                    record.phase("requested", record.requested_ns, spawn_at)
                    master._say(f"zygote {master.zygote.serial} is stale ({exc}); replacing it")
                    await replace_zygote(master)
                    zygote_done = time.monotonic_ns()
                    record.phase("zygote", spawn_at, zygote_done)
                    spawn_at = zygote_done
                    if master.zygote is None:
                        break
                    continue
                record.info["zygote_error"] = str(exc)
                master._say(f"zygote refused to fork ({exc.kind}): {exc}; falling back to exec")
                if exc.kind == "dead":
                    schedule_replacement(master, master.zygote)
                break
            finally:
                if spare is not None and spare.waiting:
                    if master.spare is None:
                        master.spare = spare  # not used (an error before it was asked): keep it
                    else:
                        spare.discard()
    if "requested" not in {name for name, _, _ in record.spans}:
        record.phase("requested", record.requested_ns, spawn_at)
    new.start(master._argv(), env, master.listeners, master.names)
    return spawn_at


async def start_zygote_mode(master: Master) -> None:
    # forks of the zygote re-parent to the master, which then waits for them like any child
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    r, w = os.pipe2(os.O_CLOEXEC)  # the lifeline: EOF in a forked generation = the master is gone
    master._lifeline = (r, w)
    assert master._loop is not None
    master.strays = StrayReaper(master._loop, master._known_pids, master._say)
    master.strays.start()
    await replace_zygote(master)


async def replace_zygote(master: Master) -> None:
    """Start a fresh zygote; on success retire the old one. Failure leaves exec mode."""
    assert master._lifeline is not None and master._loop is not None
    master._zygote_serial += 1
    fresh = Zygote(master._loop, master.log, master._zygote_serial)
    master.zygotes.add(fresh)  # known to the stray reaper while it starts, serves and stops
    env = master._child_env()
    try:
        await fresh.start(master.config.python, env, master.listeners, master.names, master.config.preload,
                          master._lifeline[0])  # fmt: skip
    except (ZygoteError, SpawnError, OSError) as exc:
        master._say(f"zygote could not start: {exc}; upgrades exec a fresh interpreter instead")
        drop_spare(master)
        master.zygotes.discard(fresh)
        old, master.zygote = master.zygote, None
        if old is not None:
            await old.stop()
            master.zygotes.discard(old)
        return
    drop_spare(master)  # forked from the zygote being replaced
    old, master.zygote = master.zygote, fresh
    master._say(
        f"zygote {fresh.serial} (pid {fresh.process.pid}) preloaded {', '.join(master.config.preload)}"
    )
    if old is not None:
        await old.stop()
        master.zygotes.discard(old)
    if master._current is None:
        master._refill_spare()  # (during an upgrade, its end refills)


async def refill_spare(master: Master) -> None:
    """Have a spare waiting for the next upgrade (when enabled and the zygote is healthy)."""
    zygote = master.zygote
    if not master.config.spare or zygote is None or master._stopping.is_set():
        return
    if master.spare is not None and master.spare.waiting:
        return
    try:
        spare = await zygote.spare(master._spare_exited)
    except (ZygoteError, OSError) as exc:
        kind = exc.kind if isinstance(exc, ZygoteError) else "os"
        master._say(f"zygote {zygote.serial} could not fork a spare ({kind}): {exc}")
        if kind in ("dead", "protocol"):
            schedule_replacement(master, zygote)
        return
    master.spares.add(spare)
    if master.zygote is not zygote or master._stopping.is_set() or master.spare is not None:
        spare.discard()  # the world moved on while it was forked
        return
    master.spare = spare


def drop_spare(master: Master) -> None:
    """Let the waiting spare go (it exits on EOF and is reaped in the background)."""
    spare, master.spare = master.spare, None
    if spare is not None:
        spare.discard()


def schedule_replacement(master: Master, failed: Zygote | None) -> None:
    """Replace ``failed`` in the background, once: not if it was replaced already, or is
    being replaced (the spawn and the spare refill may both find the same zygote dead)."""
    if failed is None or master.zygote is not failed or master._stopping.is_set():
        return
    if master._replacing is not None and not master._replacing.done():
        return
    master._replacing = master._tasks_add(replace_zygote(master))
