"""Baseline rules (surge, volume spike, sentiment drop) stay quiet until history reaches back over half of their
baseline: on a fresh install every trailing window is empty, and the first ordinary news would be a 'surge'."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from alerts import evaluator
from alerts.rules import Rule

NOW = datetime(2031, 3, 4, 10, 5, tzinfo=UTC)


class CountsClient:
    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows

    def query(self, sql: str, parameters: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(result_rows=self.rows)


# 4 baseline windows (buckets 0..3) and the current one (bucket 4); rows: grp, bucket, total, neg, pos, classified.
SURGE = Rule(name="surge", kind="surge", window_s=300, baseline_s=1200, threshold=3, min_volume=5)
BURST = ("Legal", 4, 40, 38, 0, 40)


def test_a_burst_on_a_fresh_install_does_not_fire_and_says_why() -> None:
    rows = [("Legal", 3, 6, 1, 2, 6), BURST]  # data only since the last baseline window
    (obs,) = evaluator.evaluate(CountsClient(rows), SURGE, NOW).values()
    assert obs.value >= 3  # the z-score alone would fire
    assert not obs.fires
    assert "baseline not formed yet (data only since 09:55 UTC)" in obs.message


def test_the_same_burst_fires_once_history_covers_the_baseline() -> None:
    # Another group's quiet past counts: history is judged over every group in scope.
    rows = [("Macro", 1, 5, 0, 2, 5), ("Legal", 3, 6, 1, 2, 6), BURST]
    obs = evaluator.evaluate(CountsClient(rows), SURGE, NOW)["Legal"]
    assert obs.fires and "not formed" not in obs.message


@pytest.mark.parametrize("kind", ["volume_spike", "sentiment_drop"])
def test_every_baseline_kind_waits_for_history(kind: str) -> None:
    rule = SURGE.model_copy(update={"kind": kind, "threshold": 0.3 if kind == "sentiment_drop" else 3})
    young = [("Legal", 3, 6, 0, 5, 6), BURST]
    old = [("Legal", 0, 6, 0, 5, 6), *young]
    assert not evaluator.evaluate(CountsClient(young), rule, NOW)["Legal"].fires
    assert evaluator.evaluate(CountsClient(old), rule, NOW)["Legal"].fires
