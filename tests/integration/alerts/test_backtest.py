"""The backtest on documents written around a chosen clock: it fires exactly where the real engine, ticked every
minute over the same data, fires (and nowhere else), for every rule kind; the CLI's text, --json and bad input."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from alerts import store
from alerts.backtest import backtest
from alerts.engine import Engine
from alerts.evaluator import evaluate
from alerts.rules import Rule
from tests.integration.alerts.conftest import T0, Warehouse
from tests.integration.alerts.test_engine import CASES
from tests.stack import Stack

pytestmark = pytest.mark.integration

MIN = timedelta(minutes=1)
START, END = T0 - 5 * MIN, T0 + 40 * MIN


def _write_history(w: Warehouse, kind: str) -> None:
    """The engine test's story: ordinary traffic, a burst at T0, one inside the cooldown, a bigger one after it."""
    case = CASES[kind]
    case.background(w)
    case.burst(w, T0, 1)
    case.burst(w, T0 + 8 * MIN, 1)
    case.burst(w, T0 + 18 * MIN, 2)


def _engine_firings(w: Warehouse, rule: Rule) -> list[tuple[str, datetime, datetime | None]]:
    """(group, fired at, resolved at) from the real engine ticked at every minute of [START, END]."""
    store.save_rule(w.settings, rule, client=w.client)
    engine = Engine(w.settings, w.client)
    opened: dict[str, datetime] = {}
    out = []
    t = START
    while t <= END:
        for event in engine.tick(t):
            if event.alert.rule_id != rule.id:
                continue  # another rule stored by the same test
            if event.kind == "firing":
                opened[event.alert.group_value] = t
            else:
                out.append((event.alert.group_value, opened.pop(event.alert.group_value), t))
        t += MIN
    return sorted(out + [(g, at, None) for g, at in opened.items()], key=lambda f: (f[1], f[0]))


@pytest.mark.parametrize("kind", list(CASES))
def test_backtest_fires_exactly_where_the_engine_does(warehouse: Warehouse, kind: str) -> None:
    case = CASES[kind]
    _write_history(warehouse, kind)
    result = backtest(warehouse.client, case.rule, start=START, end=END)

    got = [(f.group, f.fired_at, f.resolved_at) for f in result.firings]
    # Pending 120 s, 5-minute windows, cooldown 600 s: the first burst fires at T0+3 and leaves the window at
    # T0+6; the second (T0+8) falls in the cooldown; the third (T0+18) fires at T0+21 and clears at T0+24.
    g = case.group
    assert got == [(g, T0 + 3 * MIN, T0 + 6 * MIN), (g, T0 + 21 * MIN, T0 + 24 * MIN)]
    assert got == _engine_firings(warehouse, case.rule)
    assert result.firing_count == 2 and result.steps == 46
    assert result.queries <= 2, "prefetched once, not one query per minute"

    # The series is the evaluator's own value at every minute where the group has the rule's volume (below it
    # nothing fires, and the replay skips the group).
    series = result.groups[g]
    compared = 0
    t = START
    while t <= END:
        live = evaluate(warehouse.client, case.rule, t).get(g)
        epoch = int(t.timestamp())
        if epoch in series.times:
            i = series.times.index(epoch)
            assert live is not None and (series.values[i], series.conditions[i]) == (
                pytest.approx(live.value),
                live.fires,
            ), t
            compared += 1
        else:
            assert live is None or not live.fires, t
        t += MIN
    assert compared >= 15  # three bursts, five minutes each in the window
    frame = result.frame()
    assert frame["fired"].sum() == 2 and set(frame.loc[frame["fired"], "time"]) == {T0 + 3 * MIN, T0 + 21 * MIN}


def test_a_higher_threshold_fires_less_and_pending_zero_fires_at_once(warehouse: Warehouse) -> None:
    _write_history(warehouse, "negative_share")
    rule = CASES["negative_share"].rule
    assert backtest(warehouse.client, rule.model_copy(update={"threshold": 0.95}), start=START, end=END).firings == []
    eager = backtest(warehouse.client, rule.model_copy(update={"pending_s": 0, "cooldown_s": 0}), start=START, end=END)
    # No pending, no cooldown: each of the three bursts fires in the minute it lands in the window.
    assert [f.fired_at for f in eager.firings] == [T0 + MIN, T0 + 9 * MIN, T0 + 19 * MIN]


def _cli(w: Warehouse, stack: Stack, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    from finpulse.cli import app

    for key, value in stack.env.items():
        if key.startswith("FINPULSE_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("FINPULSE_CLICKHOUSE_DATABASE", w.settings.clickhouse_database)
    return CliRunner().invoke(app, ["alerts", "backtest", *args])


def test_cli_json_text_file_and_bad_input(
    warehouse: Warehouse, stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _write_history(warehouse, "surge")
    rule = CASES["surge"].rule
    store.save_rule(warehouse.settings, rule, client=warehouse.client)
    until = END.isoformat()

    out = _cli(warehouse, stack, monkeypatch, rule.id, "--since", "45m", "--until", until, "--json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert {"rule", "start", "end", "step_s", "metric", "threshold", "counting", "firing_count", "firings", "groups",
            "steps", "queries", "elapsed_s", "cooldown_s", "pending_s"} <= set(doc)  # fmt: skip
    assert doc["rule"]["id"] == rule.id and doc["firing_count"] == 2 and doc["metric"] == "negative_count_z"
    assert [f["fired_at"] for f in doc["firings"]] == [(T0 + 3 * MIN).isoformat(), (T0 + 21 * MIN).isoformat()]
    acme = next(g for g in doc["groups"] if g["group"] == "ACME")
    assert acme["firings"] == 2 and len(acme["series"]["value"]) == acme["minutes_at_volume"] > 0

    text = _cli(warehouse, stack, monkeypatch, rule.name, "--since", "45m", "--until", until)  # by name
    assert text.exit_code == 0, text.output
    assert "would have fired 2 time(s)" in text.stdout and "ACME: 2 firing(s)" in text.stdout

    long = _cli(warehouse, stack, monkeypatch, rule.id, "--since", "11h", "--until", until, "--json")
    assert long.exit_code == 0, long.output
    assert "minutes evaluated (100%)" in long.stderr and json.loads(long.stdout)["firing_count"] == 2  # progress

    rules_toml = tmp_path / "rules.toml"
    rules_toml.write_text(
        '[[rule]]\nname = "draft"\nkind = "negative_share"\nscope = { ticker = "ACME" }\nwindow_s = 300\n'
        "threshold = 0.5\nmin_volume = 10\n",
        encoding="utf-8",
    )
    draft = _cli(warehouse, stack, monkeypatch, "--file", str(rules_toml), "--since", "45m", "--until", until, "--json")
    assert draft.exit_code == 0, draft.output
    assert json.loads(draft.stdout)["rule"]["id"] == "draft" and json.loads(draft.stdout)["firing_count"] >= 1

    for args, message in (
        (["no-such-rule", "--since", "7d"], "no rule 'no-such-rule'"),
        ([rule.id, "--since", "seven days"], "--since 'seven days'"),
        ([rule.id, "--since", "400d"], "at most 90 days"),
        ([rule.id, "--until", "yesterday"], "--until 'yesterday'"),
        ([rule.id, "--step", "30"], "--step 30"),
        (["--file", str(tmp_path / "missing.toml")], "does not exist"),
    ):
        bad = _cli(warehouse, stack, monkeypatch, *args)
        assert bad.exit_code == 2, (args, bad.output)
        assert message in bad.stderr, (args, bad.stderr)


def _stories(w: Warehouse) -> None:
    """Syndicated stories about ACME: each story's copies arrive over several minutes, so a window holds a story's
    copies from different minutes (a per-minute count of stories would count it several times)."""
    rows, story_ids = [], []
    for k, (sentiment, copies, minutes) in enumerate(
        [("negative", 4, (0, 1, 2)), ("negative", 3, (1, 4)), ("neutral", 2, (2, 3)), ("negative", 5, (6, 7, 12)),
         ("positive", 1, (7,)), ("negative", 2, (8, 9))]
    ):  # fmt: skip
        for minute in minutes:
            batch = w.rows(T0 + minute * MIN, copies, sentiment=sentiment, ticker="ACME", text=f"story {k}")
            rows += batch
            story_ids += [f"story-{k}"] * len(batch)
    columns = ["id", "source", "kind", "lang", "title", "body", "published_at", "ingested_at", "tickers", "entities",
               "meta", "topic", "sentiment", "sentiment_score", "model_version", "classified_at"]  # fmt: skip
    w.client.insert(
        "documents", [[*r, s] for r, s in zip(rows, story_ids, strict=True)], column_names=[*columns, "story_id"]
    )


def test_stories_count_once_per_window_as_the_engine_counts(warehouse: Warehouse) -> None:
    _stories(warehouse)
    rule = Rule(name="acme stories", kind="negative_share", scope={"ticker": "ACME"}, window_s=300, threshold=0.5,
                min_volume=2, cooldown_s=0, count="stories")  # fmt: skip
    start, end = T0 - 2 * MIN, T0 + 20 * MIN
    result = backtest(warehouse.client, rule, start=start, end=end)
    assert result.counting == "stories"
    series = result.groups[""]
    t = start
    while t <= end:
        live = evaluate(warehouse.client, rule, t).get("")
        epoch = int(t.timestamp())
        if epoch in series.times:
            i = series.times.index(epoch)
            assert live is not None, t
            assert (series.values[i], series.conditions[i]) == (pytest.approx(live.value), live.fires), t
        else:
            assert live is None or live.doc_count < rule.min_volume, t
        t += MIN
    # At T0+5 the window [T0, T0+5) holds stories 0, 1 (negative) and 2 (neutral): 2 of 3, not 14 of 19 copies.
    i = series.times.index(int((T0 + 5 * MIN).timestamp()))
    assert series.values[i] == pytest.approx(2 / 3)
    documents = backtest(warehouse.client, rule.model_copy(update={"count": "documents"}), start=start, end=end)
    j = documents.groups[""].times.index(int((T0 + 5 * MIN).timestamp()))
    assert documents.groups[""].values[j] == pytest.approx(18 / 22)
    assert [(f.fired_at, f.resolved_at) for f in result.firings] == [
        (g_at, r_at) for _, g_at, r_at in _engine_firings(warehouse, rule)
    ]


def test_baseline_formed_is_judged_over_every_group_as_the_engine_does(warehouse: Warehouse) -> None:
    """A surge per ticker: ACME has only recent traffic, and a quiet ticker (below the rule's volume, so the replay
    skips it) carries the scope's older history. The engine counts the baseline as formed thanks to the quiet
    ticker; without it, nothing may fire."""
    rule = Rule(name="ticker surge", kind="surge", group_by="ticker", window_s=300, baseline_s=7200, threshold=3.0,
                min_volume=10, cooldown_s=600, count="documents")  # fmt: skip
    rows = []
    for k in range(1, 7):  # ACME: 30 minutes of ordinary traffic before T0, too short a history on its own
        rows += w_rows(warehouse, T0 - 5 * k * MIN, 2, "ACME")
    warehouse.insert(rows)
    warehouse.docs(T0, 40, sentiment="negative", ticker="ACME")
    quiet = backtest(warehouse.client, rule, start=T0 - 2 * MIN, end=T0 + 10 * MIN)
    assert quiet.firings == [] and _engine_firings(warehouse, rule) == []

    warehouse.insert(w_rows(warehouse, T0 - 110 * MIN, 1, "QUIET"))  # one old document of another ticker
    formed = backtest(warehouse.client, rule, start=T0 - 2 * MIN, end=T0 + 10 * MIN)
    assert [(f.group, f.fired_at) for f in formed.firings] == [("ACME", T0 + MIN)]
    assert "QUIET" not in formed.groups  # below volume: not drawn
    engine = _engine_firings(warehouse, rule.model_copy(update={"id": "ticker-surge-2"}))
    assert [(f.group, f.fired_at, f.resolved_at) for f in formed.firings] == engine


def w_rows(w: Warehouse, at: datetime, n: int, ticker: str) -> list[list[Any]]:
    return w.rows(at, n, sentiment="negative", ticker=ticker) + w.rows(at, 3 * n, sentiment="neutral", ticker=ticker)


# Ticker-scoped rules by entity-level sentiment (migration 0040): grouped by ticker (stories, the rollup), a ticker
# in the scope (documents, the documents table through lang) and a watched ticker (stories and documents).
ENTITY_RULES = [
    Rule(id="bt-tick-group", name="ticker group", kind="negative_share", group_by="ticker", window_s=300,
         threshold=0.5, min_volume=3, pending_s=120, cooldown_s=600),
    Rule(id="bt-tick-scope", name="globex scope", kind="negative_share", scope={"ticker": "GLOBEX", "lang": "en"},
         window_s=300, threshold=0.5, min_volume=3, pending_s=120, cooldown_s=600, count="documents"),
    Rule(id="bt-tick-watch", name="globex watch", kind="watchlist", watch_tickers=["GLOBEX"], window_s=300,
         threshold=3, pending_s=120, cooldown_s=600),
    Rule(id="bt-tick-watch-docs", name="globex watch docs", kind="watchlist", watch_tickers=["GLOBEX"],
         window_s=300, threshold=3, pending_s=120, cooldown_s=600, count="documents"),
]  # fmt: skip


@pytest.mark.parametrize("rule", ENTITY_RULES, ids=[r.id for r in ENTITY_RULES])
def test_ticker_rules_count_entity_sentiment_as_the_engine_does(warehouse: Warehouse, rule: Rule) -> None:
    """ "Acme beats estimates while rival Globex warns": every document is positive, the sentiment toward Globex is
    negative. The backtest counts it as the engine does: by the entity rows where they exist (4 Globex negatives,
    and one Globex document without an entity row, counted by its own positive label)."""
    from tests.entity_engines import ClauseEngine
    from tests.integration.alerts.test_entity_sentiment import CONTRAST, _doc_rows, _store

    contrast = _doc_rows(CONTRAST, ["ACME", "GLOBEX"])
    _store(warehouse, contrast)  # document level only: nothing is negative
    start, end = T0 - 2 * MIN, T0 + 10 * MIN
    assert backtest(warehouse.client, rule, start=start, end=end).firings == []

    _store(warehouse, contrast, ClauseEngine())  # the same batch, now with entity rows
    _store(warehouse, _doc_rows(["Globex holds its annual meeting"], ["GLOBEX"], offset_s=20))
    result = backtest(warehouse.client, rule, start=start, end=end)
    group = "ticker:GLOBEX" if rule.kind == "watchlist" else "GLOBEX" if rule.group_by == "ticker" else ""
    # In the window from T0+1, pending 120 s: fires at T0+3, clears when the documents leave the window at T0+6.
    got = [(f.group, f.fired_at, f.resolved_at) for f in result.firings]
    assert got == [(group, T0 + 3 * MIN, T0 + 6 * MIN)]
    assert got == _engine_firings(warehouse, rule)
    i = result.groups[group].times.index(int((T0 + 3 * MIN).timestamp()))
    assert result.groups[group].values[i] == pytest.approx(4 if rule.kind == "watchlist" else 4 / 5)
    if rule.group_by == "ticker":  # Acme: positive toward it in every document
        assert max(result.groups["ACME"].values) == 0.0
