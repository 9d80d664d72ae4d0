"""Grafana dashboards and Prometheus rules for swapprof, generated from code.

``export(DIR)`` writes ``swapprof-upgrades.json``, ``swapprof-runtime.json`` and ``rules.yml``
(the files committed under ``dashboards/``); ``build_dashboards()`` / ``build_rules()`` return
them as data; ``push(URL)`` creates or updates the dashboards in a Grafana through
grafana-client (``pip install 'swapprof[dashboards]'``), imported only then.
"""

from swapprof.dashboards._errors import (
    GrafanaAuthError,
    GrafanaError,
    GrafanaUnreachableError,
    MissingExtraError,
)
from swapprof.dashboards._export import build_dashboards, build_rules, export
from swapprof.dashboards._push import push

__all__ = [
    "GrafanaAuthError",
    "GrafanaError",
    "GrafanaUnreachableError",
    "MissingExtraError",
    "build_dashboards",
    "build_rules",
    "export",
    "push",
]
