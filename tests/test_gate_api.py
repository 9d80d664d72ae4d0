"""Pins the results schema name and the client error kinds (CI jobs and dashboards use them);
swapprof.gate's public names are pinned in test_public_api."""

from __future__ import annotations

from swapprof.gate._load import ERROR_KINDS
from swapprof.gate._schema import SCHEMA


def test_schema_and_error_kinds() -> None:
    assert SCHEMA == "swapprof.bench/1"
    assert ERROR_KINDS == ("refused", "reset", "closed", "timeout", "http_5xx", "malformed")
