"""What ``--preload auto`` learned, kept in ``RUN_DIR/preload.json`` so a restarted master starts warm.

The serving generation's worker 0 lists the non-app modules it imported (``generation._imported``);
``merge`` adds the new names, in import order, so that a zygote importing them one at a time
meets every package before its submodules. Modules a zygote could not preload safely are kept,
with the reason, in ``dropped`` and not tried again -- until a dependency changes on disk
(``relearn``): then the drops are forgotten and the next report replaces the set instead of
adding to it, so modules the new versions no longer import leave the zygote.

The file is the master's alone; it names the app it was learned for and is ignored for another.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from swapprof._vocabulary import DROP_IMPORT_FAILED
from swapprof.server._rundir import RunDir

VERSION = 1


class LearnedPreload:
    def __init__(self, run_dir: RunDir, app: str, app_dir: str | None = None) -> None:
        self.run_dir, self.app, self.app_dir = run_dir, app, app_dir
        self.modules: list[str] = []
        self.dropped: dict[str, dict[str, str]] = {}
        self.relearning = False
        self.reports = 0
        self.from_disk = False

    def load(self) -> bool:
        """Take what an earlier master learned for this app; True if there was something."""
        data = self.run_dir.read_json(self.run_dir.learned)
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return False
        if data.get("app") != self.app or data.get("app_dir") != self.app_dir:
            return False  # learned for another app
        modules, dropped = data.get("modules"), data.get("dropped")
        if not isinstance(modules, list) or not isinstance(dropped, dict):
            return False
        self.modules = [m for m in modules if isinstance(m, str)]
        self.dropped = {k: v for k, v in dropped.items() if isinstance(v, dict)}
        self.from_disk = bool(self.modules)
        return self.from_disk

    def save(self) -> None:
        """Write the file (atomically); raises OSError (the caller counts and says it)."""
        self.run_dir.write_json(
            self.run_dir.learned,
            {"version": VERSION, "app": self.app, "app_dir": self.app_dir, "saved_at": time.time(),
             "modules": self.modules, "dropped": self.dropped},
            indent=1,
        )  # fmt: skip

    def merge(self, names: Iterable[str]) -> list[str]:
        """Take a generation's report; return the names that are new (and not dropped)."""
        names = [n for n in names if isinstance(n, str) and n]
        self.reports += 1
        if self.relearning:
            self.relearning = False
            before = set(self.modules)
            self.modules = list(dict.fromkeys(names))
            return [n for n in self.modules if n not in before and n not in self.dropped]
        known = set(self.modules)
        added = [n for n in dict.fromkeys(names) if n not in known]
        self.modules.extend(added)
        return [n for n in added if n not in self.dropped]

    def drop(self, dropped: dict[str, Any]) -> dict[str, dict[str, str]]:
        """Record modules a zygote dropped; return those not dropped before."""
        new = {}
        for name, why in dropped.items():
            if name not in self.dropped and isinstance(why, dict):
                new[name] = self.dropped[name] = {k: str(v) for k, v in why.items()}
        return new

    def wanted(self) -> list[str]:
        """What the next zygote imports, checked: the learned modules not dropped."""
        return [m for m in self.modules if m not in self.dropped]

    def code_only(self) -> list[str]:
        """The learned modules whose import failed in a zygote (Django's models, needing the
        project's settings): the next zygote holds their bytecode only (``zygote._bytecode``)."""
        return [m for m in self.modules if self.dropped.get(m, {}).get("reason") == DROP_IMPORT_FAILED]

    def relearn(self) -> None:
        """A dependency changed on disk: try every module again; the next report replaces the set."""
        self.dropped.clear()
        self.relearning = True

    def status(self) -> dict[str, Any]:
        return {
            "learned": len(self.modules),
            "wanted": len(self.wanted()),
            "reports": self.reports,
            "from_run_dir": self.from_disk,
            "dropped": {name: dict(why) for name, why in sorted(self.dropped.items())},
        }
