"""Default rules are seeded once and never overwrite what an analyst did; the default scenario has surges."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace
from typing import Any

from alerts import repository, store
from alerts.defaults import DEFAULT_RULES, seed_default_rules
from finpulse.settings import Settings
from ingest.sources.generator import generate, scenario


class FakeRuleTable:
    """alert_rules as ReplacingMergeTree: every insert is a row version; the newest per id wins."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def insert(self, table: str, rows: list[list[Any]], column_names: list[str]) -> None:
        assert table == "alert_rules"
        self.rows += [dict(zip(column_names, row, strict=True)) for row in rows]

    def latest(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for row in sorted(self.rows, key=lambda r: r["version"]):
            out[row["id"]] = row
        return out

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> SimpleNamespace:
        if sql == repository.EXISTING_RULE_IDS_SQL:
            ids = set(parameters["ids"])
            return SimpleNamespace(result_rows=[(i,) for i in {r["id"] for r in self.rows} & ids])
        if sql == repository.RULES_SQL:
            live = [r for r in self.latest().values() if not r["deleted"]]
            return SimpleNamespace(result_rows=[(r["definition"],) for r in sorted(live, key=lambda r: r["id"])])
        if sql == repository.RULE_SQL:
            row = self.latest().get(parameters["id"])
            return SimpleNamespace(result_rows=[(row["definition"], row["deleted"])] if row else [])
        raise AssertionError(f"unexpected query {sql}")


def _settings(tmp_path: Any) -> Settings:
    return Settings(data_dir=tmp_path)


def test_fresh_install_gets_the_three_default_rules(tmp_path: Any) -> None:
    table = FakeRuleTable()
    written = seed_default_rules(_settings(tmp_path), table)
    assert sorted(written) == sorted(r.id for r in DEFAULT_RULES)
    rules = store.list_rules(_settings(tmp_path), client=table)
    assert {(r.kind, r.group_by) for r in rules} == {
        ("negative_share", "ticker"),
        ("surge", "topic"),
        ("sentiment_drop", "lang"),
    }
    assert all(r.enabled and r.origin == "default" and r.cooldown_s > 0 and r.min_volume > 0 for r in rules)


def test_disabled_default_rule_stays_disabled_after_restart(tmp_path: Any) -> None:
    settings, table = _settings(tmp_path), FakeRuleTable()
    seed_default_rules(settings, table)
    rule = store.get_rule(settings, "default-negative-share-ticker", client=table)
    store.save_rule(settings, rule.model_copy(update={"enabled": False, "threshold": 0.7}), client=table)
    store.delete_rule(settings, "default-sentiment-drop-lang", client=table)
    before = len(table.rows)

    assert seed_default_rules(settings, table) == []  # the restart's seeding writes nothing
    assert len(table.rows) == before
    again = store.get_rule(settings, "default-negative-share-ticker", client=table)
    assert again.enabled is False and again.threshold == 0.7
    assert "default-sentiment-drop-lang" not in {r.id for r in store.list_rules(settings, client=table)}


def test_seeding_adds_a_default_that_is_missing_but_keeps_the_others(tmp_path: Any) -> None:
    settings, table = _settings(tmp_path), FakeRuleTable()
    seed_default_rules(settings, table)
    table.rows = [r for r in table.rows if r["id"] != "default-negative-surge-topic"]
    assert seed_default_rules(settings, table) == ["default-negative-surge-topic"]
    assert json.loads(table.latest()["default-negative-surge-topic"]["definition"])["kind"] == "surge"


def test_default_scenario_surges_recur_after_a_baseline_with_distinct_syndicated_stories() -> None:
    sc = scenario("default")
    first = min(e.start_s for e in sc.events)
    assert 90 <= first <= 180  # after a baseline has formed, well within 5 minutes

    def docs(at: float, n: int = 400) -> list[Any]:
        return [generate(sc, random.Random(f"t:{at}:{k}"), at) for k in range(n)]

    assert not any(tag for _, _, tag in docs(first - 30))  # no event before the first surge
    for at in (first + 10, first + 10 + sc.events[0].every_s):  # the first burst and its repetition
        burst = [(item, mood) for item, mood, tag in docs(at) if tag]
        assert len(burst) > 100 and all(mood == "negative" for _, mood in burst)
        stories = {item.meta["gen_story"] for item, _ in burst}
        assert 2 <= len(stories) <= sc.events[0].stories  # several distinct stories...
        titles = {item.title for item, _ in burst}
        assert len(titles) > len(stories)  # ...each syndicated by several outlets
        cores = {t.rsplit(" (", 1)[0] for t in titles}
        assert len(cores) == len(stories)  # copies of a story differ only in the outlet
    assert docs(first + 10)[0] != docs(first + 10 + sc.events[0].every_s)[0]
    # between bursts the feed is back to its baseline mood
    assert not any(tag for _, _, tag in docs(first + sc.events[0].duration_s + 5))
