"""Push the dashboards to a Grafana: find or create the folder, then write what changed."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from swapprof._errors import ConfigError
from swapprof.dashboards import _grafana
from swapprof.dashboards._export import build_dashboards
from swapprof.dashboards._panels import Json

ENV_TOKEN = "GRAFANA_TOKEN"
DEFAULT_FOLDER = "swapprof"
DEFAULT_TIMEOUT = 10.0
MESSAGE = "swapprof dashboards push"
#: fields Grafana sets itself on save; the rest must match for a dashboard to count as unchanged
VOLATILE = ("id", "version")


@dataclass(frozen=True)
class PushedDashboard:
    uid: str
    title: str
    change: str  # "created", "updated" or "unchanged" (then nothing was written)
    version: int | None
    url: str


@dataclass(frozen=True)
class PushReport:
    grafana: str
    folder: str
    folder_uid: str
    folder_created: bool
    dashboards: tuple[PushedDashboard, ...]

    @property
    def changed(self) -> bool:
        return self.folder_created or any(d.change != "unchanged" for d in self.dashboards)

    def lines(self) -> list[str]:
        state = "created" if self.folder_created else "exists"
        out = [f"Grafana {self.grafana}: folder {self.folder!r} (uid {self.folder_uid}) {state}"]
        for d in self.dashboards:
            version = f"version {d.version}" if d.version is not None else ""
            out.append(f"  {d.change:<9} {d.uid:<18} {d.title!r:<26} {version:<10} {d.url}".rstrip())
        return out


def folder_uid(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or DEFAULT_FOLDER


def _ensure_folder(api: Any, name: str) -> tuple[str, bool]:
    for folder in api.folder.get_all_folders() or []:
        if folder.get("title") == name:
            return str(folder["uid"]), False
    created = api.folder.create_folder(name, uid=folder_uid(name))
    return str(created["uid"]), True


def _current(api: Any, uid: str) -> Json | None:
    try:
        found: Json = api.dashboard.get_dashboard(uid)
    except Exception as exc:  # grafana-client's 404 is a GrafanaClientError like any 4xx
        if _grafana.status_of(exc) == _grafana.NOT_FOUND:
            return None
        raise
    return found


def _same(current: Json, board: Json, folder: str) -> bool:
    stored = current.get("dashboard") or {}
    meta = current.get("meta") or {}
    wanted = {k: v for k, v in board.items() if k not in VOLATILE}
    return meta.get("folderUid") == folder and all(stored.get(k) == v for k, v in wanted.items())


def _push_one(api: Any, base: str, board: Json, folder: str) -> PushedDashboard:
    uid, title = board["uid"], board["title"]
    current = _current(api, uid)
    if current is not None and _same(current, board, folder):
        meta = current.get("meta") or {}
        version = (current.get("dashboard") or {}).get("version")
        return PushedDashboard(uid, title, "unchanged", version, base + str(meta.get("url", "")).lstrip("/"))
    answer = api.dashboard.update_dashboard(
        {"dashboard": board, "folderUid": folder, "overwrite": True, "message": MESSAGE}
    )
    change = "created" if current is None else "updated"
    return PushedDashboard(
        uid, title, change, answer.get("version"), base + str(answer.get("url", "")).lstrip("/")
    )


def push(
    url: str,
    token: str | None = None,
    *,
    folder: str = DEFAULT_FOLDER,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> PushReport:
    """Create ``folder`` in the Grafana at ``url`` if needed, and write each swapprof dashboard into
    it (overwriting) unless Grafana already holds the same one.

    ``token``: a service account token (``Authorization: Bearer``); default: ``GRAFANA_TOKEN``
    from ``env`` (os.environ), else the user and password in ``url``, else anonymous.
    """
    parts = _grafana.parse_url(url)
    if not folder.strip():
        raise ConfigError("--folder must not be empty")
    if token is None:
        token = (os.environ if env is None else env).get(ENV_TOKEN) or None
    where = _grafana.public_url(parts)
    root = urljoin(where, "/")  # dashboard URLs from Grafana already hold its sub-path
    api = _grafana.connect(parts, token, timeout)
    try:
        with _grafana.translated(where):
            uid, created = _ensure_folder(api, folder.strip())
            pushed = tuple(_push_one(api, root, board, uid) for board in build_dashboards().values())
    finally:
        _grafana.close(api)
    return PushReport(where, folder.strip(), uid, created, pushed)
