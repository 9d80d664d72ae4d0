"""The bake's statistics and rules, without processes: known values, and the verdicts they give."""

from __future__ import annotations

import math
import random
from itertools import combinations
from statistics import NormalDist, mean, pvariance

import pytest

from swapprof._vocabulary import (
    BAKE_FAIL,
    BAKE_PASS,
    BAKE_TOO_LITTLE_TRAFFIC,
    REASON_BAKE_ERRORS,
    REASON_BAKE_LATENCY,
)
from swapprof.server._accounting import BASE_MS, Interval, Ledger, Window, bucket_ms, bucket_of, decode
from swapprof.server._config import ServerConfig
from swapprof.server.master._bake import judge
from swapprof.server.master._bakestats import counts, excess_ratio_test, normal_sf, rank_test_greater

# R's documentation of wilcox.test: two samples, alternative = "greater": W = 35, p-value = 0.1272 (exact)
R_X = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
R_Y = [1.15, 0.88, 0.90, 0.74, 1.21]


def _u(a: list[float], b: list[float]) -> float:
    return sum((i > j) + 0.5 * (i == j) for i in a for j in b)


def _permutation_us(x: list[float], y: list[float]) -> list[float]:
    values = x + y
    found = []
    for chosen in combinations(range(len(values)), len(x)):
        rest = [values[i] for i in range(len(values)) if i not in chosen]
        found.append(_u([values[i] for i in chosen], rest))
    return found


def test_rank_test_matches_r_on_its_documented_example() -> None:
    u, p = rank_test_greater(counts(R_X), counts(R_Y))
    assert u == 35
    # the exact permutation p-value is R's 0.1272; the normal approximation (R with exact=FALSE,
    # correct=TRUE: z = (35 - 25 - 0.5) / sqrt(50 * 16 / 12)) is 0.1223
    us = _permutation_us(R_X, R_Y)
    assert sum(v >= u for v in us) / len(us) == pytest.approx(0.1272, abs=5e-5)
    assert p == pytest.approx(normal_sf(9.5 / math.sqrt(50 * 16 / 12)), rel=1e-12)
    assert p == pytest.approx(0.1223, abs=5e-5)


def test_rank_test_small_known_value() -> None:
    # R: wilcox.test(c(4,5,6), c(1,2,3), alternative = "greater", exact = FALSE) -> p-value = 0.04043
    u, p = rank_test_greater(counts([4, 5, 6]), counts([1, 2, 3]))
    assert (u, round(p, 5)) == (9, 0.04043)
    assert rank_test_greater(counts([1, 2, 3]), counts([4, 5, 6]))[1] > 0.95


def test_rank_test_tie_correction_is_the_permutation_variance() -> None:
    x, y = [1.0, 2, 2, 3, 3, 3, 5], [1.0, 1, 2, 3, 4, 4]
    us = _permutation_us(x, y)
    u, p = rank_test_greater(counts(x), counts(y))
    assert u == _u(x, y)
    assert mean(us) == pytest.approx(len(x) * len(y) / 2)
    expected = normal_sf((u - mean(us) - 0.5) / math.sqrt(pvariance(us)))
    assert p == pytest.approx(expected, rel=1e-9)


def test_rank_test_without_evidence() -> None:
    assert rank_test_greater({}, {1.0: 3})[1] == 1.0
    assert rank_test_greater({2.0: 10}, {2.0: 7})[1] == 1.0  # all tied


def test_rank_test_p_values_under_the_null_are_not_too_small() -> None:
    rng = random.Random(7)
    small = 0
    for _ in range(400):
        x = counts(round(rng.lognormvariate(0, 0.5), 1) for _ in range(60))
        y = counts(round(rng.lognormvariate(0, 0.5), 1) for _ in range(80))
        small += rank_test_greater(x, y)[1] < 0.05
    assert small < 400 * 0.05 * 1.6  # about 5 % (binomial noise)


def test_excess_ratio_test_known_values() -> None:
    # Agresti-Caffo: p1 = 21/102, p0 = 1/102, se = sqrt(p1 q1 / 102 + p0 q0 / 102)
    p1, p0 = 21 / 102, 1 / 102
    se = math.sqrt(p1 * (1 - p1) / 102 + p0 * (1 - p0) / 102)
    assert excess_ratio_test(20, 100, 0, 100) == pytest.approx(1 - NormalDist().cdf((p1 - p0) / se), rel=1e-6)
    assert excess_ratio_test(20, 100, 0, 100) == pytest.approx(9.761e-07, rel=1e-3)
    assert excess_ratio_test(20, 100, 0, 100, margin=0.05) == pytest.approx(1.9635e-04, rel=1e-3)
    # the adjusted ratios differ by exactly the margin: no evidence either way
    assert excess_ratio_test(10, 98, 10, 98, margin=0.0) == pytest.approx(0.5)
    assert excess_ratio_test(0, 0, 0, 10) == 1.0
    assert excess_ratio_test(0, 500, 0, 5000, margin=0.01) > 0.99


def test_buckets_and_the_wire_format() -> None:
    assert bucket_of(0.00005) == 0 and bucket_of(BASE_MS / 1000) == 0
    for ms in (0.3, 1.0, 7.5, 80.0, 1234.0):
        assert bucket_ms(bucket_of(ms / 1000)) == pytest.approx(ms, rel=0.06)
    assert bucket_of(10_000.0) == bucket_of(1e9)  # the last bucket takes everything above
    interval = Interval()
    for ms, failed in ((0.5, False), (0.5, False), (80.0, True)):
        interval.observe(ms / 1000, failed)
    text = interval.take(123)
    assert interval.requests == 0 and sum(interval.hist) == 0
    stamp, requests, failed_n, hist = decode(text) or (0, 0, 0, {})
    assert (stamp, requests, failed_n) == (123, 3, 1)
    assert hist == {bucket_of(0.0005): 2, bucket_of(0.08): 1}
    assert decode("garbage") is None
    ledger = Ledger()
    ledger.add(text)
    ledger.add(Interval().take(200))
    ledger.add("x y")
    assert ledger.received == 2
    assert ledger.window(0, 150).requests == 3 and ledger.window(123, 300).requests == 0


def _window(n: int, failed: int, ms: float) -> Window:
    window = Window()
    window.add(n, failed, {bucket_of(ms / 1000): n})
    return window


CONFIG = ServerConfig("swapprof.server.demo:app", bake_window=5.0)


def test_judge_needs_the_minimum_sample() -> None:
    assert judge(_window(1000, 0, 1), _window(20, 20, 1), CONFIG, final=False).verdict is None
    late = judge(_window(1000, 0, 1), _window(20, 20, 1), CONFIG, final=True)
    assert late.verdict == BAKE_TOO_LITTLE_TRAFFIC and "20 new / 1000 old" in late.detail


def test_judge_errors_fail_early_only_with_strong_evidence() -> None:
    clear = judge(_window(1000, 0, 1), _window(100, 20, 1), CONFIG, final=False)
    assert (clear.verdict, clear.reason) == (BAKE_FAIL, REASON_BAKE_ERRORS)
    assert "20.0% (20 of 100)" in clear.detail
    # 5 of 100 against 0 of 1000: p ~ 0.0066 < alpha = 0.01 at the end, not < alpha / 10 before it
    weak_new, old = _window(100, 5, 1), _window(1000, 0, 1)
    no_margin = ServerConfig("a:b", bake_window=5.0, bake_error_margin=0.0)
    assert judge(old, weak_new, no_margin, final=False).verdict is None
    assert judge(old, weak_new, no_margin, final=True).verdict == BAKE_FAIL
    # the margin: 1.5 % against 1 % is not worth a rollback
    assert judge(_window(5000, 50, 1), _window(2000, 30, 1), CONFIG, final=True).verdict == BAKE_PASS


def test_judge_latency_needs_significance_and_an_effect() -> None:
    slow = judge(_window(1000, 0, 1), _window(60, 0, 81), CONFIG, final=False)
    assert (slow.verdict, slow.reason) == (BAKE_FAIL, REASON_BAKE_LATENCY)
    # significant, but +1 ms (under the 2-ms floor) and +30 % of 0.3 ms (under the floor): pass
    assert judge(_window(1000, 0, 1), _window(500, 0, 2), CONFIG, final=True).verdict == BAKE_PASS
    assert judge(_window(1000, 0, 0.3), _window(500, 0, 0.4), CONFIG, final=True).verdict == BAKE_PASS
    # +10 % of 100 ms: over the floor, under the 20 % margin
    assert judge(_window(1000, 0, 100), _window(500, 0, 110), CONFIG, final=True).verdict == BAKE_PASS
