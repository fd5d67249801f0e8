"""alerts/backtest.py without a database: the sliding distinct-story count against a brute-force count, and the
--since parser's answers to good and bad input."""

from __future__ import annotations

import random

import numpy as np
import pytest

from alerts.backtest import BacktestError, parse_since, sliding_distinct


def test_sliding_distinct_counts_each_key_once_per_window() -> None:
    rng = random.Random(7)
    n_groups, n_minutes, window = 3, 60, 5
    seen = {(rng.randrange(n_groups), rng.randrange(n_minutes), rng.randrange(12)) for _ in range(300)}
    g, m, k = (np.array(col) for col in zip(*sorted(seen), strict=True))
    got = sliding_distinct(g, m, k, n_groups, n_minutes, window)
    for group in range(n_groups):
        for end in range(n_minutes + 1):
            expected = len({key for gg, mm, key in seen if gg == group and end - window <= mm < end})
            assert got[group, end] == expected, (group, end)


def test_sliding_distinct_with_nothing_seen() -> None:
    empty = np.array([], dtype=np.int64)
    assert sliding_distinct(empty, empty, empty, 2, 10, 3).tolist() == [[0] * 11, [0] * 11]


@pytest.mark.parametrize(("text", "seconds"), [("7d", 604_800), ("12h", 43_200), ("90m", 5_400), ("1.5h", 5_400),
                                               ("2W", 1_209_600), (" 3600s ", 3_600)])  # fmt: skip
def test_parse_since(text: str, seconds: int) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize(("text", "message"), [("", "write a number and a unit"), ("7", "write a number"),
                                               ("seven days", "write a number"), ("30s", "at least one minute"),
                                               ("100d", "at most 90 days"), ("-1d", "write a number")])  # fmt: skip
def test_parse_since_refuses(text: str, message: str) -> None:
    with pytest.raises(BacktestError, match=message):
        parse_since(text)
