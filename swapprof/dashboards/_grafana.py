"""grafana-client, imported only when pushing, and its errors turned into swapprof's.

grafana-client has no type annotations, so the client is handled as ``Any`` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from swapprof._errors import ConfigError
from swapprof.dashboards._errors import (
    GrafanaAuthError,
    GrafanaError,
    GrafanaUnreachableError,
    MissingExtraError,
)

_REASONS = re.compile(
    r"\[Errno -?\d+\] [^'\")]+|Failed to resolve '[^']*'|[Rr]ead timed out|timed out|certificate verify failed"
)
INSTALL_HINT = "pip install 'swapprof[dashboards]'"
NOT_FOUND = 404


def parse_url(url: str) -> SplitResult:
    """Check a Grafana base URL (``http[s]://[user:password@]host[:port][/sub/path]``)."""
    parts = urlsplit(url.strip())
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    bad = parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or parts.fragment
    if bad or any(ch.isspace() for ch in url.strip()):
        shown = url.replace(parts.password, "***") if parts.password else url
        raise ConfigError(
            f"--url {shown!r} is not a Grafana URL like http://localhost:3000 or https://host/grafana"
        )
    path = parts.path if parts.path.endswith("/") else parts.path + "/"  # grafana-client appends "api"
    return parts._replace(path=path)


def public_url(parts: SplitResult) -> str:
    """The URL without user and password, for messages."""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def connect(parts: SplitResult, token: str | None, timeout: float) -> Any:
    try:
        grafana_client = importlib.import_module("grafana_client")
    except ImportError as exc:
        raise MissingExtraError(f"pushing dashboards needs grafana-client: {INSTALL_HINT}") from exc
    return grafana_client.GrafanaApi.from_url(urlunsplit(parts), credential=token or None, timeout=timeout)


def close(api: Any) -> None:
    """Close grafana-client's HTTP session (it has no close of its own)."""
    session = getattr(getattr(api, "client", None), "s", None)
    if session is not None:
        session.close()


def status_of(exc: BaseException) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


@contextlib.contextmanager
def translated(where: str) -> Iterator[None]:
    """Turn grafana-client's and its HTTP library's exceptions into GrafanaError and subclasses."""
    client = importlib.import_module("grafana_client.client")
    transport = _transport_errors()
    try:
        yield
    except client.GrafanaException as exc:
        status = status_of(exc)
        if status in (401, 403):
            what = "rejected the credentials" if status == 401 else "denied the request"
            advice = (
                "pass a service account token with --token or GRAFANA_TOKEN"
                if status == 401
                else "the token's role must be allowed to create folders and write dashboards (Editor)"
            )
            raise GrafanaAuthError(f"Grafana at {where} {what} ({status}): {advice}", status) from exc
        if status == 0:
            raise GrafanaUnreachableError(f"cannot reach Grafana at {where}: {_reason(exc)}") from exc
        raise GrafanaError(f"Grafana at {where} answered {status}: {_message(exc)}", status) from exc
    except transport as exc:
        raise GrafanaUnreachableError(f"cannot reach Grafana at {where}: {_reason(exc)}") from exc


def _transport_errors() -> tuple[type[BaseException], ...]:
    """grafana-client 3.x speaks HTTP through requests, 4+ through niquests: catch whichever is there."""
    errors: list[type[BaseException]] = [OSError]
    for name in ("requests.exceptions", "niquests.exceptions"):
        with contextlib.suppress(ImportError):
            errors.append(importlib.import_module(name).RequestException)
    return tuple(errors)


def _message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "message" in response:
        return str(response["message"])
    return str(response or exc)


def _reason(exc: BaseException) -> str:
    """The useful part of a transport error ("[Errno 111] Connection refused"), else all of it."""
    text = str(exc)
    found = _REASONS.search(text)
    return found.group(0).strip() if found else f"{type(exc).__name__}: {text}"
