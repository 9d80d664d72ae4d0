"""``ZygotePool``: the master's zygote mode -- the zygote, its spare, the strays, the lifeline.

The pool owns every field zygote mode needs; the master hands it what it needs of the master as
callables (``say``, ``child_env``, ``known_pids``, ``busy``, ``stopping``, ``run_task``), so no
module reaches into another's private state.

- ``fork(record, new, env, spawn_at)`` starts a generation from the waiting spare or as a fresh
  fork; a stale zygote is replaced first (phase ``zygote``), a dead one in the background. It
  returns False when the caller must exec instead.
- ``refill()`` forks spares in the background until one per worker waits; ``stop()`` lets everything go.
- With ``--preload auto``, ``stage`` takes the serving generation's report of what it imported
  (``_learned``) and, when it names modules the zygote lacks, a new zygote is started with them
  in the background (never while an upgrade runs); learned modules the zygote could not preload
  safely are dropped by name, said, counted, and a fresh zygote starts without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from socket import socket
from typing import IO, TYPE_CHECKING, Any

from swapprof._vocabulary import REQUESTED, ZYGOTE
from swapprof.server._config import ServerConfig
from swapprof.server._contract import STAGE_IMPORTS
from swapprof.server._rundir import RunDir
from swapprof.server.master._child import Generation, memory_kb
from swapprof.server.master._learned import LearnedPreload
from swapprof.server.master._record import UpgradeRecord
from swapprof.server.master._spare import Spare
from swapprof.server.master._spawn import SpawnError
from swapprof.server.master._strays import Adopter
from swapprof.server.master._zygote_client import Zygote, ZygoteError, fork_env, start_generation_forked

if TYPE_CHECKING:
    from swapprof.server.master._telemetry import UpgradeObserver

SPARE_MIN_LIFE_S = 5.0  # a spare that died sooner is not replaced at once
UNSAFE_ATTEMPTS = 4  # zygotes started in a row, each without the culprits the last one found


def requested_phase(record: UpgradeRecord, spawn_at: int) -> None:
    """The upgrade's ``requested`` phase, once (its first worker's spawn ends it)."""
    if all(name != REQUESTED for name, _, _ in record.spans):
        record.phase(REQUESTED, record.requested_ns, spawn_at)


class ZygotePool:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        log: IO[bytes] | None,
        *,
        config: ServerConfig,
        run_dir: RunDir,
        observer: UpgradeObserver | None,
        listeners: Sequence[socket],
        names: Sequence[str],
        say: Callable[[str], None],
        child_env: Callable[[], dict[str, str]],
        known_pids: Callable[[], set[int]],
        busy: Callable[[], bool],
        stopping: Callable[[], bool],
        run_task: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self.loop, self.log = loop, log
        self.python, self.preload, self.spare_enabled = config.python, config.preload_declared, config.spare
        self.spares_wanted = max(1, config.workers)  # one waiting spare per worker of a generation
        self.run_dir, self.observer = run_dir, observer
        self.learned = LearnedPreload(run_dir, config.app, config.app_dir) if config.preload_auto else None
        self._held: set[str] = set()  # the learned modules the current zygote was asked to import
        self._asking: set[str] = set()  # those a zygote being started was asked to import
        self._checked: tuple[int, int] | None = None  # (upgrade id, zygote serial) last found current
        self._learn_pending = False
        self.listeners, self.names = listeners, names
        self.say, self.child_env, self.busy, self.stopping = say, child_env, busy, stopping
        self._known_pids, self._run_task = known_pids, run_task
        self.zygote: Zygote | None = None
        self.waiting: list[Spare] = []  # generations forked and warmed ahead, one per worker
        self.spares: set[Spare] = set()  # every spare not yet reaped (waiting, or let go)
        self.zygotes: set[Zygote] = set()  # every zygote started and not yet stopped
        self.adopter: Adopter | None = None
        self._serial = 0
        self._replacing: asyncio.Task[None] | None = None
        self._refilling: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.adopter = Adopter(self.loop, self.pids, self.say)  # forks of the zygote re-parent to us
        if self.learned is not None and self.learned.load():
            self.say(f"learned preload: {len(self.learned.wanted())} modules from {self.run_dir.learned}")
        await self.replace()

    def pids(self) -> set[int]:
        """Every process the master knows of: its generations' and the pool's own."""
        pids = self._known_pids()
        pids.update(s.pid for s in self.spares if s.alive)
        pids.update(z.process.pid for z in self.zygotes if z.process.alive)
        return pids

    async def stop(self) -> None:
        if self._refilling is not None:
            with contextlib.suppress(Exception):
                await self._refilling  # it drops what it forked, seeing that we stop
        self.waiting = []
        for spare in list(self.spares):
            await spare.stop()
        if self.zygote is not None:
            await self.zygote.stop()
            self._forget(self.zygote)
            self.zygote = None
        if self.adopter is not None:
            self.adopter.close()
            self.adopter = None

    def status(self) -> dict[str, Any] | None:
        if self.zygote is None:
            return None
        ready = [s for s in self.waiting if s.waiting]
        spare_pid = ready[0].pid if ready else None
        (rss, pss), (spare_rss, spare_pss) = memory_kb(self.zygote.process.pid), memory_kb(spare_pid or 0)
        hello = self.zygote.hello
        preload: dict[str, Any] = {
            "mode": "auto" if self.learned is not None else "declared",
            "declared": list(self.preload),
            "modules": hello.get("modules"),  # files watched: everything it imported
            "learned_loaded": int(hello.get("learned") or 0),
            "code_held": int(hello.get("code_held") or 0),  # import_failed ones: bytecode only
            "learning": self._learn_pending or (self._replacing is not None and not self._replacing.done()),
        }
        if self.learned is not None:
            preload.update(self.learned.status())
        return {
            "serial": self.zygote.serial,
            "pid": self.zygote.process.pid,
            "spare_pid": spare_pid,
            "spare_pids": [spare.pid for spare in ready],  # one per worker when all wait
            "rss_kb": rss,
            "pss_kb": pss,
            "spare_rss_kb": spare_rss if spare_pid else None,
            "spare_pss_kb": spare_pss if spare_pid else None,
            "preload": preload,
        }

    # ---------------------------------------------------------------- spawning
    async def fork(
        self, record: UpgradeRecord, new: Generation, env: dict[str, str], spawn_at: int
    ) -> int | None:
        """Start ``new`` from the spare or a fork; return when its spawn phase began, or None
        when the caller must exec (no zygote, or it refused). Records ``requested`` (and
        ``zygote`` when a stale zygote had to be replaced first) on the forked path."""
        if self.zygote is None or self.adopter is None:
            return None
        forked = fork_env(env, self.listeners, self.names)
        for attempt in (1, 2):
            spare = self._take_spare()
            zygote = self.zygote
            # one stale check per upgrade: its later workers' spares start without a round trip
            checked = record.id > 0 and self._checked == (record.id, zygote.serial)
            try:
                if await start_generation_forked(new, zygote, forked, spare, check=not checked):
                    record.info["spare"] = True
                    self.spares.discard(spare)  # a generation now
                self._checked = (record.id, zygote.serial)
                record.info["spawn_mode"] = "fork"
                record.info["zygote_learned"] = bool(self.zygote.hello.get("learned"))
                record.info["zygote_modules"] = self.zygote.hello.get("modules")
                requested_phase(record, spawn_at)
                return spawn_at
            except ZygoteError as exc:
                if spare is not None:
                    spare.discard()  # forked from a zygote that now refuses: not to be used
                if exc.kind == "stale" and attempt == 1:
                    requested_phase(record, spawn_at)
                    self.say(f"zygote {self.zygote.serial} is stale ({exc}); replacing it")
                    if self.learned is not None:
                        self.learned.relearn()  # new versions may import other modules
                    if self._replacing is not None and not self._replacing.done():
                        with contextlib.suppress(Exception):
                            await asyncio.shield(self._replacing)  # one replacement at a time
                    await self.replace()
                    zygote_done = time.monotonic_ns()
                    record.phase(ZYGOTE, spawn_at, zygote_done)
                    spawn_at = zygote_done
                    if self.zygote is None:
                        break
                    continue
                record.info["zygote_error"] = str(exc)
                self.say(f"zygote refused to fork ({exc.kind}): {exc}; falling back to exec")
                if exc.kind == "dead":
                    self._schedule_replacement(self.zygote)
                break
            finally:
                if spare is not None and spare.waiting:
                    if len(self.waiting) < self.spares_wanted:
                        self.waiting.append(spare)  # not used (an error before it was asked): keep it
                    else:
                        spare.discard()
        return None

    # ---------------------------------------------------------------- the zygote
    async def replace(self) -> None:
        """Start a fresh zygote; on success retire the old one. Failure leaves exec mode. With
        ``--preload auto``, a zygote that found learned modules it cannot preload safely is
        followed by one without them (up to ``UNSAFE_ATTEMPTS`` in a row)."""
        assert self.adopter is not None
        for _ in range(UNSAFE_ATTEMPTS):
            self._serial += 1
            fresh = Zygote(self.loop, self.log, self._serial)
            wanted = self.learned.wanted() if self.learned is not None else []
            self._asking = set(wanted)  # a report meanwhile naming only these needs no other round
            learned = self._write_list(fresh.serial, wanted)
            self.zygotes.add(fresh)  # known to the stray reaper while it starts, serves and stops
            try:
                await fresh.start(self.python, self.child_env(), self.listeners, self.names, self.preload,
                                  self.adopter.lifeline[0], learned)  # fmt: skip
            except ZygoteError as exc:
                if exc.kind == "unsafe" and self._dropped(fresh, exc.dropped):
                    await fresh.stop()  # it exits by itself; reaped here
                    self.zygotes.discard(fresh)
                    continue
                await self._failed(fresh, exc)
                return
            except (SpawnError, OSError) as exc:
                await self._failed(fresh, exc)
                return
            finally:
                if learned is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(learned)
            self._dropped(fresh, fresh.hello.get("dropped") or {})
            self._held = set(wanted)
            break
        else:
            await self._failed(None, ZygoteError("learned modules kept failing the safety checks", "unsafe"))
            return
        self._drop_spare()  # forked from the zygote being replaced
        old, self.zygote = self.zygote, fresh
        learned_note = (
            f" and {fresh.hello.get('learned') or 0} learned modules" if self.learned is not None else ""
        )
        declared = ", ".join(self.preload) or "nothing declared"
        self.say(f"zygote {fresh.serial} (pid {fresh.process.pid}) preloaded {declared}{learned_note}")
        if old is not None:
            await old.retire()
            self._forget(old)
            self.zygotes.discard(old)
        if not self.busy():
            self.refill()  # (during an upgrade, its end refills)

    async def _failed(self, fresh: Zygote | None, exc: Exception) -> None:
        self.say(f"zygote could not start: {exc}; upgrades exec a fresh interpreter instead")
        self._drop_spare()
        if fresh is not None:
            self.zygotes.discard(fresh)
        old, self.zygote = self.zygote, None
        if old is not None:
            await old.stop()
            self._forget(old)
            self.zygotes.discard(old)

    def _forget(self, zygote: Zygote) -> None:
        """A zygote is gone: so is the list of pages its generations copied (``server._cow``)."""
        if zygote.process.pid:
            with contextlib.suppress(OSError):
                self.run_dir.cow_pages(zygote.process.pid).unlink()

    # ---------------------------------------------------------------- learning (--preload auto)
    def stage(self, gen: Generation, stage: str) -> None:
        """A worker reported ``stage``; ``imports``: what it imported, to learn from."""
        if stage != STAGE_IMPORTS or self.learned is None or self.stopping():
            return
        path = self.run_dir.imported(gen.number, gen.worker)
        data = self.run_dir.read_json(path)
        with contextlib.suppress(OSError):
            path.unlink()  # read: one file per generation would pile up otherwise
        names = data.get("modules") if isinstance(data, dict) else None
        if not isinstance(names, list):
            return
        self.learned.merge(names)
        self._save()
        held = self._held | self._asking if self._replacing_now() else self._held
        if any(name not in held for name in self.learned.wanted()):
            self._learn_pending = True
            if not self.busy():
                self.refill()  # starts the learning zygote (after an upgrade, its end does)

    def _replacing_now(self) -> bool:
        """A zygote replacement runs -- other than the caller: the one that, done, refills."""
        task = self._replacing
        return task is not None and not task.done() and task is not asyncio.current_task()

    def _write_list(self, serial: int, wanted: list[str]) -> str | None:
        """The file the zygote reads its learned modules from (None: nothing learned yet)."""
        if self.learned is None or not wanted:
            return None
        path = self.run_dir.zygote_preload(serial)
        try:
            self.run_dir.write_json(path, {"modules": wanted, "code_only": self.learned.code_only()})
        except OSError as exc:
            self.say(f"cannot write {path}: {exc}; zygote {serial} preloads nothing learned")
            return None
        return str(path)

    def _dropped(self, zygote: Zygote, dropped: dict[str, Any]) -> bool:
        """Record what ``zygote`` dropped; say each new one in a line, count it; True if any."""
        if self.learned is None or not dropped:
            return False
        new = self.learned.drop(dropped)
        by_reason: dict[str, list[str]] = {}
        for name, why in new.items():
            by_reason.setdefault(why.get("reason", "?"), []).append(name)
        for reason, names in by_reason.items():  # one line per reason, every module named
            example = new[names[0]].get("detail", "")[:120]
            self.say(f"zygote {zygote.serial} dropped {len(names)} learned module(s) from the preload "
                     f"({reason}): {', '.join(names)}; {names[0]}: {example}")  # fmt: skip
            if self.observer is not None:
                self.observer.preload_dropped(reason, len(names))
        self._save()
        return bool(new)

    def _save(self) -> None:
        if self.learned is None:
            return
        try:
            self.learned.save()
        except OSError as exc:
            self.say(f"cannot write {self.run_dir.learned}: {exc}")

    def _schedule_replacement(self, failed: Zygote | None) -> None:
        """Replace ``failed`` in the background, once: not if it was replaced already, or is
        being replaced (the spawn and the spare refill may both find the same zygote dead)."""
        if failed is None or self.zygote is not failed or self.stopping():
            return
        if self._replacing is not None and not self._replacing.done():
            return
        self._replacing = self._run_task(self.replace())

    # ---------------------------------------------------------------- the spare
    def refill(self) -> None:
        """Fork the next spare in the background. Not a task the master cancels: cancelled
        mid-request it would leave a spare nobody knows of; ``stop`` waits for it instead."""
        learn = self._learn_pending and self.zygote is not None
        if learn and not self.stopping() and not self._replacing_now():
            self._learn_pending = False
            self._replacing = self._run_task(self.replace())  # it refills when done
            return
        if self.zygote is None or not self.spare_enabled or self.stopping():
            return
        if self._refilling is None or self._refilling.done():
            self._refilling = asyncio.create_task(self._refill())

    async def _refill(self) -> None:
        """Fork spares one after the other until one per worker waits."""
        while (zygote := self.zygote) is not None and not self.stopping() and self._short():
            try:
                spare = await zygote.spare(self._spare_exited)
            except (ZygoteError, OSError) as exc:
                if self.zygote is not zygote:
                    continue  # retired while it forked: ask the zygote that replaced it
                kind = exc.kind if isinstance(exc, ZygoteError) else "os"
                self.say(f"zygote {zygote.serial} could not fork a spare ({kind}): {exc}")
                if kind in ("dead", "protocol"):
                    self._schedule_replacement(zygote)
                return
            self.spares.add(spare)
            if self.zygote is not zygote or self.stopping() or not self._short():
                spare.discard()  # the world moved on while it was forked: a replaced zygote's
                continue  # spare is not used, the new one is asked (its refill found us busy)
            self.waiting.append(spare)

    def _short(self) -> bool:
        self.waiting = [s for s in self.waiting if s.waiting]
        return len(self.waiting) < self.spares_wanted

    def _take_spare(self) -> Spare | None:
        while self.waiting:
            spare = self.waiting.pop(0)
            if spare.waiting:
                return spare
        return None

    def _spare_exited(self, spare: Spare, unexpected: bool) -> None:
        self.spares.discard(spare)
        if spare in self.waiting:
            self.waiting.remove(spare)
        if unexpected:
            lived = (time.monotonic_ns() - spare.created_at) / 1e9
            self.say(f"spare pid {spare.pid} died while waiting, after {lived:.1f} s")
            if lived >= SPARE_MIN_LIFE_S and not self.busy():
                self.refill()  # else the next upgrade's end does: no fork loop

    def _drop_spare(self) -> None:
        """Let the waiting spares go (each exits on EOF and is reaped in the background)."""
        waiting, self.waiting = self.waiting, []
        for spare in waiting:
            spare.discard()
