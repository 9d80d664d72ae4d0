"""The leak verdict's statistics, and the referrer paths of stale objects."""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Iterator
from typing import ClassVar

import pytest

from swapprof._errors import ConfigError
from swapprof.reload._referrers import referrer_paths
from swapprof.reload._verdict import Settings, drift, summarize, t_critical


@pytest.mark.parametrize(
    ("df", "t95", "t99"),
    [(1, 12.706, 63.657), (2, 4.303, 9.925), (5, 2.571, 4.032), (10, 2.228, 3.169), (30, 2.042, 2.750)],
)
def test_t_critical_matches_tables(df: int, t95: float, t99: float) -> None:
    assert t_critical(0.95, df) == pytest.approx(t95, abs=1e-3)
    assert t_critical(0.99, df) == pytest.approx(t99, abs=1e-3)


def test_drift_interval() -> None:
    estimate = drift([10.0, 12.0, 14.0], 0.95)
    assert estimate.bytes_per_reload == 12.0
    assert estimate.high - 12.0 == pytest.approx(4.303 * 2 / math.sqrt(3), rel=1e-3)
    assert drift([5.0], 0.95).low == -math.inf


def verdict(retained: list[int], **settings: float) -> str:
    pairs = [(version, b) for version, b in enumerate(retained, start=1)]
    return summarize("m", Settings(**settings), pairs, [len(retained), 0, sum(retained)], None).verdict  # type: ignore[arg-type]


def test_verdicts() -> None:
    assert verdict([900_000, 200_100, 199_900, 200_000]) == "leaking"  # warmup left out
    assert verdict([900_000, 150, 148, 152, 149]) == "not leaking"  # real but under the threshold
    assert verdict([900_000, 150, 148, 152, 149], threshold_bytes=100) == "leaking"
    assert verdict([0, 50_000, -50_000, 50_000, -50_000]) == "not leaking"  # noise
    assert verdict([0, 200_000, 200_000]) == "insufficient data"
    with pytest.raises(ConfigError):
        Settings(min_samples=1)


@pytest.fixture
def registry() -> Iterator[types.ModuleType]:
    module = types.ModuleType("swapprof_test_registry")
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_referrer_paths(registry: types.ModuleType) -> None:
    def in_list() -> None: ...
    def in_class() -> None: ...
    def in_closure() -> None: ...
    def in_route() -> None: ...

    class Routes:
        handlers: ClassVar[list[object]] = [in_class]

    def make() -> object:
        def wrapper() -> None:
            in_closure()

        return wrapper

    registry.SUBSCRIBERS = [None, in_list]
    registry.Routes = Routes
    registry.WRAPPED = make()
    registry.ROUTES = {"a-b": in_route}
    targets = [in_list, in_class, in_closure, in_route]
    found = referrer_paths(targets)
    assert found == [
        "swapprof_test_registry.SUBSCRIBERS[1]",
        "swapprof_test_registry.Routes.handlers[0]",
        "swapprof_test_registry.WRAPPED.__closure__[0].cell_contents",
        "swapprof_test_registry.ROUTES['a-b']",
    ]
