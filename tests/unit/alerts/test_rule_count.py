"""Rule.count: rules count distinct stories unless they ask for every copy; the evaluator passes it to the queries
and says what it counted. The counts themselves, on a real ClickHouse: tests/integration/alerts/test_stories.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from alerts import evaluator
from alerts.defaults import DEFAULT_RULES
from alerts.rules import Rule, RuleFileError, load_rules_file

NOW = datetime(2031, 3, 4, 10, 5, tzinfo=UTC)


def test_rules_count_stories_unless_told_to_count_documents() -> None:
    assert Rule(name="s", kind="surge").count == "stories"
    assert Rule(name="d", kind="surge", count="documents").count == "documents"
    assert Rule(name="w", kind="negative_share", count=" Documents ").count == "documents"  # a hand-typed value
    stored = Rule(name="old", kind="surge").model_dump()
    stored.pop("count")  # a rule stored before the field existed
    assert Rule.model_validate(stored).count == "stories"


@pytest.mark.parametrize("bad", ["copies", "", 1, None])
def test_an_unknown_count_is_refused_with_the_choices(bad: Any) -> None:
    with pytest.raises(ValidationError) as err:
        Rule(name="x", kind="surge", count=bad)
    assert err.value.errors()[0]["loc"] == ("count",)
    assert "'stories' or 'documents'" in str(err.value)


def test_the_rules_file_names_the_rule_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "wire surge"\nkind = "surge"\ncount = "copies"\n', encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"rule #1 \(wire surge\): count: Input should be 'stories' or"):
        load_rules_file(path)
    path.write_text('[[rule]]\nname = "wire surge"\nkind = "surge"\ncount = "documents"\n', encoding="utf-8")
    (rule,), _ = load_rules_file(path)
    assert rule.count == "documents"


def test_example_file_and_default_rules_say_what_they_count() -> None:
    rules, _ = load_rules_file(Path(__file__).resolve().parents[3] / "alerts" / "rules.example.toml")
    assert {r.count for r in rules} == {"stories", "documents"}  # the example shows both
    assert DEFAULT_RULES and all(r.count == "stories" for r in DEFAULT_RULES)


class CountsClient:
    """Answers the window-count query with the given rows (grp, bucket, total, negative, positive, classified)."""

    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows
        self.sql: list[str] = []

    def query(self, sql: str, parameters: dict[str, Any]) -> SimpleNamespace:
        self.sql.append(sql)
        return SimpleNamespace(result_rows=self.rows)


@pytest.mark.parametrize(
    ("count", "counted", "word"),
    [("stories", "uniqExactIf(story_id, sentiment = 'negative')", "stories"), ("documents", "countIf(", "documents")],
)
def test_evaluator_counts_what_the_rule_asks_and_says_so(count: str, counted: str, word: str) -> None:
    rule = Rule(name="share", kind="negative_share", window_s=300, threshold=0.5, min_volume=5, count=count)
    client = CountsClient([("", 0, 10, 8, 1, 10)])
    (obs,) = evaluator.evaluate(client, rule, NOW).values()
    assert counted in client.sql[0]
    assert obs.fires and obs.message.startswith(f"80% of 10 {word} negative") and f"minimum 5 {word}" in obs.message

    surge = Rule(name="surge", kind="surge", window_s=300, baseline_s=600, threshold=2, min_volume=1, count=count)
    client = CountsClient([("", 0, 4, 1, 0, 4), ("", 1, 4, 1, 0, 4), ("", 2, 12, 9, 0, 12)])
    (obs,) = evaluator.evaluate(client, surge, NOW).values()
    assert obs.fires and obs.message.startswith(f"negative {word}: 9 in the last 5 min")
    assert obs.message.endswith(f"12 {word})")


def test_watchlist_counts_stories_and_says_one_story() -> None:
    rule = Rule(name="w", kind="watchlist", watch_tickers=["ACME"], threshold=1)
    client = CountsClient([("ticker:ACME", 1, ["d1", "d2"])])
    (obs,) = evaluator.evaluate(client, rule, NOW).values()
    assert "uniqExact(story_id) AS negative" in client.sql[0]
    assert obs.message.startswith("1 negative story mentions ACME")
    docs = rule.model_copy(update={"count": "documents"})
    client = CountsClient([("ticker:ACME", 2, ["d1", "d2"])])
    (obs,) = evaluator.evaluate(client, docs, NOW).values()
    assert "uniqExact(id) AS negative" in client.sql[0] and obs.message.startswith("2 negative documents mention")
