"""In-place reload inside a generation (SIGUSR1, or ``swapprof ctl reload [MODULE]``), tracked.

The reload runs on the event loop thread, between requests: no request code runs while
modules are replaced. The tracker (and tracemalloc, 1 frame) starts at the first reload, so a
generation that is never reloaded pays nothing. After the reload the served app is looked up
again, so new code takes effect. The result goes to the master over sd_notify.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from typing import Any

from swapprof.server._contract import F_RELOAD, GenerationContract, worker_index
from swapprof.server._notify import Notifier
from swapprof.server._rundir import RunDir
from swapprof.server.generation._app import import_app

log = logging.getLogger("swapprof.server")


class GenerationReloader:
    def __init__(
        self, contract: GenerationContract, middleware: Any, notifier: Notifier, generation: int
    ) -> None:
        self.app_spec = contract.app
        self.middleware = middleware
        self.notifier = notifier
        self.generation = generation
        self.worker = worker_index()
        self.run_dir = RunDir(contract.run_dir) if contract.run_dir else None
        self.trackers: dict[tuple[str, ...], Any] = {}

    def default_modules(self) -> list[str]:
        """The app's module, plus every loaded module of its package, deepest first."""
        module = self.app_spec.partition(":")[0]
        top = module.split(".")[0]
        names = [n for n in sys.modules if n == top or n.startswith(top + ".")]
        return sorted(names, key=lambda n: (-n.count("."), n)) if "." in module else [module]

    def request(self) -> tuple[int, list[str]]:
        """What the master asked for (a request file), else a SIGUSR1 sent by hand."""
        if self.run_dir is None:
            return 0, []
        path = self.run_dir.reload_request(self.generation, self.worker)
        data = self.run_dir.read_json(path)
        with contextlib.suppress(OSError):
            path.unlink()
        try:
            return int(data.get("id", 0)), [str(m) for m in data.get("modules") or []]
        except (AttributeError, TypeError, ValueError):
            return 0, []

    def reload(self) -> dict[str, Any]:
        request_id, modules = self.request()
        modules = modules or self.default_modules()
        result: dict[str, Any] = {
            "id": request_id,
            "generation": self.generation,
            "worker": self.worker,
            "modules": modules,
        }
        missing = [m for m in modules if m not in sys.modules]
        if missing:
            result.update(outcome="failed", error=f"not imported in this generation: {', '.join(missing)}")
        else:
            result.update(self._tracked(tuple(modules)))
        self.notifier.send(**{F_RELOAD: json.dumps(result, default=str)[:60000]})
        return result

    def _tracked(self, modules: tuple[str, ...]) -> dict[str, Any]:
        from swapprof.gc import installed_monitor
        from swapprof.reload import ReloadError, ReloadTracker

        tracker = self.trackers.get(modules)
        if tracker is None:
            tracker = self.trackers[modules] = ReloadTracker(modules, gc_monitor=installed_monitor())
        try:
            record = tracker.reload()
        except ReloadError as exc:
            return {"outcome": "failed", "error": f"{exc}: {exc.__cause__!r}"}
        try:
            self.middleware.app = import_app(self.app_spec)
        except Exception as exc:  # the old app keeps serving
            return {"outcome": "failed", "error": f"app lookup after reload failed: {exc!r}"}
        summary = tracker.summary()
        return {
            "outcome": "ok",
            "duration_ms": round(record.duration_s * 1000, 3),
            "retained_bytes": record.retained_bytes,
            "rss_delta_bytes": None
            if record.rss_after is None or record.rss_before is None
            else record.rss_after - record.rss_before,
            "leaking": summary.leaking,
            "bytes_per_reload": summary.bytes_per_reload,
            "stale_versions": summary.stale_versions,
            "reloads": summary.reloads,
        }

    def snapshot(self) -> dict[str, Any]:
        """``/debug/swapprof/reloads``: every tracker's records and verdict."""
        return {"generation": self.generation, "trackers": [t.to_dict() for t in self.trackers.values()]}
