"""/debug/pprof/* and the workers' /debug/swapprof/* routes on the master's debug port.

The master runs no app code: these are the serving generation's workers' own routes, passed on
to their private endpoints (path and query as sent, less ``worker``):

- ``?worker=I``: worker I's answer, as it is;
- no ``worker``: worker 0 when the generation has one worker, else 400 listing the workers;
- ``?worker=all``: every serving worker asked at once, the answers merged -- profiles
  (profile.proto) into one profile whose samples carry the pprof label ``worker``; text
  (``debug=1|2``, ``cmdline``) as one section per worker; JSON as ``{"workers": {"0": ...}}``.
  The index page, ``symbol`` and ``trace`` have no merged form: 400 says so.

Every answer names where it came from: ``X-Swapprof-Worker`` (index, or indexes) and
``X-Swapprof-Pid``. A worker that does not answer within the profile's ``seconds`` plus
``PROXY_MARGIN_S``: 502; a worker being replaced: 503. The waits are the event loop's, so a
30 s profile holds one connection and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import NamedTuple
from urllib.parse import urlencode

from swapprof.server.master._child import READY, SERVING, Generation
from swapprof.server.master._fleet import Fleet
from swapprof.server.master._worker_http import WorkerAnswer, WorkerUnreachableError, get

WORKER_HEADER = "X-Swapprof-Worker"
PID_HEADER = "X-Swapprof-Pid"
PROXY_MARGIN_S = 30.0
MAX_PROXY_SECONDS = 3600
DEFAULT_PROFILE_SECONDS = 30  # what /debug/pprof/profile takes without ?seconds=
INDEX_RE = re.compile(r"[0-9]{1,6}")  # ASCII digits only
NO_MERGED_FORM = {
    "": "the index page describes one process; open it with worker=I",
    "symbol": "symbols are looked up in one process; use worker=I",
    "trace": "execution traces are a Go runtime feature (every worker answers 501)",
}
PASSED_ON = ("content-disposition", "location", "retry-after", "x-go-pprof", "www-authenticate")


class Reply(NamedTuple):
    status: int
    ctype: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def plain(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, "text/plain; charset=utf-8", (text + "\n").encode(), headers)


def _serving(gen: Generation) -> bool:
    return gen.alive and gen.state in (READY, SERVING)


def _where(gens: list[Generation]) -> tuple[tuple[str, str], ...]:
    return (
        (WORKER_HEADER, ",".join(str(g.worker) for g in gens)),
        (PID_HEADER, ",".join(str(g.pid) for g in gens)),
    )


def _timeout(path: str, query: dict[str, str]) -> float:
    text = query.get("seconds", "")
    seconds = int(text) if INDEX_RE.fullmatch(text) else 0
    if not seconds and path.endswith("/profile"):
        seconds = DEFAULT_PROFILE_SECONDS
    return min(seconds, MAX_PROXY_SECONDS) + PROXY_MARGIN_S


class WorkerRoutes:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    async def answer(self, path: str, query: list[tuple[str, str]], head: bool = False) -> Reply:
        chosen = self._choose(query)
        if isinstance(chosen, Reply):
            return chosen
        gens, everyone = chosen
        kept = [(k, v) for k, v in query if k != "worker"]
        target = path + ("?" + urlencode(kept) if kept else "")
        timeout = _timeout(path, dict(kept))
        if not everyone:
            return await self._one(gens[0], target, timeout, head)
        name = path[len("/debug/pprof/") :] if path.startswith("/debug/pprof/") else None
        if path == "/debug/pprof" or name in NO_MERGED_FORM:
            reason = NO_MERGED_FORM[name or ""]
            return plain(400, f"worker=all: {path} has no merged form: {reason}", _where(gens))
        return await self._all(gens, target, timeout)

    def _choose(self, query: list[tuple[str, str]]) -> tuple[list[Generation], bool] | Reply:
        cohort = self.fleet.serving()
        if cohort is None or not len(cohort):
            return plain(503, "no generation is serving")
        listing = ", ".join(f"{w.worker} (pid {w.pid})" for w in cohort)
        runs = (
            f"generation {cohort.number} runs {len(cohort)} worker{'s' if len(cohort) > 1 else ''}: {listing}"
        )
        values = [v for k, v in query if k == "worker"]
        if len(values) > 1:
            return plain(400, f"give worker= once, not {len(values)} times; {runs}")
        if not values and len(cohort) > 1:
            return plain(400, f"{runs}; add worker=I for one of them, or worker=all")
        value = values[0] if values else "0"
        if value == "all":
            serving = [w for w in cohort if _serving(w)]
            return (serving, True) if serving else plain(503, f"no worker is serving now; {runs}")
        if not INDEX_RE.fullmatch(value) or int(value) >= len(cohort):
            return plain(400, f"worker={value!r}: no such worker; {runs}; or worker=all")
        gen = cohort.workers[int(value)]
        if not _serving(gen):
            return plain(503, f"worker {gen.worker} is {gen.state}, not serving (being replaced); try again")
        return [gen], False

    async def _fetch(self, gen: Generation, target: str, timeout: float, head: bool) -> WorkerAnswer | Reply:
        try:
            return await get(self.fleet.socket(gen), target, timeout, head=head)
        except WorkerUnreachableError as exc:
            return plain(502, f"worker {gen.worker} (pid {gen.pid}) did not answer: {exc}", _where([gen]))

    async def _one(self, gen: Generation, target: str, timeout: float, head: bool) -> Reply:
        answer = await self._fetch(gen, target, timeout, head)
        if isinstance(answer, Reply):
            return answer
        headers = tuple((k, v) for k, v in answer.headers if k.lower() in PASSED_ON)
        ctype = answer.header("content-type") or "application/octet-stream"
        return Reply(answer.status, ctype, answer.body, headers + _where([gen]))

    async def _all(self, gens: list[Generation], target: str, timeout: float) -> Reply:
        answers = await asyncio.gather(*(self._fetch(g, target, timeout, False) for g in gens))
        where = _where(gens)
        for gen, answer in zip(gens, answers, strict=True):
            if isinstance(answer, Reply):
                return answer
            if answer.status != 200:
                text = answer.body.decode("utf-8", "replace").strip()
                return plain(answer.status, f"worker {gen.worker} (pid {gen.pid}): {text}", where)
        done = [a for a in answers if isinstance(a, WorkerAnswer)]
        ctype = done[0].header("content-type") or ""
        if ctype.startswith("application/octet-stream"):
            return _merged_profile(gens, done, where)
        if ctype.startswith("application/json"):
            merged = {str(g.worker): json.loads(a.body) for g, a in zip(gens, done, strict=True)}
            return Reply(200, "application/json", json.dumps({"workers": merged}).encode(), where)
        if ctype.startswith("text/plain"):
            sections = [
                f"# worker {g.worker} (pid {g.pid})\n".encode() + a.body.rstrip(b"\n") + b"\n"
                for g, a in zip(gens, done, strict=True)
            ]
            return Reply(200, ctype, b"\n".join(sections), where)
        return plain(
            400,
            f"worker=all: answers of type {ctype or 'unknown'!r} have no merged form; use worker=I",
            where,
        )


def _merged_profile(
    gens: list[Generation], answers: list[WorkerAnswer], where: tuple[tuple[str, str], ...]
) -> Reply:
    from swapprof.pprof import ProfileFormatError, encode_profile, merge_profiles, read_profile

    try:
        parts = [
            ({"worker": str(g.worker)}, read_profile(a.body)) for g, a in zip(gens, answers, strict=True)
        ]
        body = encode_profile(merge_profiles(parts))
    except ProfileFormatError as exc:
        return plain(502, f"worker=all: the workers' profiles cannot be merged: {exc}", where)
    disposition = answers[0].header("content-disposition") or 'attachment; filename="profile"'
    return Reply(200, "application/octet-stream", body, (("Content-Disposition", disposition), *where))
