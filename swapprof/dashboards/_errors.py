"""Errors of ``swapprof dashboards``, under swapprof's tree (see ``swapprof._errors``)::

SwapprofError
 ├── ConfigError                  bad URL, folder or output directory (the CLI exits 2)
 ├── MissingExtraError            grafana-client is not installed (the CLI exits 1)
 └── GrafanaError                 Grafana answered with an error (the CLI exits 1)
      ├── GrafanaAuthError        401 / 403: the token is missing, wrong or lacks a role
      └── GrafanaUnreachableError no connection, DNS failure or timeout
"""

from __future__ import annotations

from swapprof._errors import SwapprofError


class GrafanaError(SwapprofError):
    """Grafana refused a request; ``status`` is the HTTP status (0 when there was no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class GrafanaAuthError(GrafanaError):
    """Grafana answered 401 (no or wrong credentials) or 403 (the token's role may not do this)."""


class GrafanaUnreachableError(GrafanaError):
    """No answer from Grafana: connection refused, unknown host, TLS failure or timeout."""


class MissingExtraError(SwapprofError, ImportError):
    """``swapprof dashboards push`` needs grafana-client: ``pip install 'swapprof[dashboards]'``."""
