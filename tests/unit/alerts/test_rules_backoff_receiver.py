from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from alerts.config import load_file
from alerts.dispatcher import backoff_s
from alerts.evaluator import _mean_std
from alerts.receiver import ReceiverState, build_app
from alerts.rules import Rule, RuleFileError
from alerts.signing import sign
from finpulse.settings import Settings, load_settings


def test_rule_defaults_and_validation() -> None:
    rule = Rule(name="ACME Negative Share!", kind="negative_share", scope={"ticker": " acme ", "topic": ""})
    assert rule.id == "acme-negative-share" and rule.scope.ticker == "ACME" and rule.scope.topic is None
    assert not rule.uses_documents and rule.fingerprint("") != rule.fingerprint("x")
    assert Rule(name="x", kind="negative_share", scope={"lang": "en"}).uses_documents
    for bad, match in [
        ({"kind": "negative_share", "threshold": 1.5}, "between 0 and 1"),
        ({"kind": "surge", "threshold": 3, "window_s": 90}, "whole minutes"),
        ({"kind": "surge", "threshold": 3, "window_s": 3600, "baseline_s": 3600}, "two windows"),
        ({"kind": "watchlist"}, "watch_tickers"),
        ({"kind": "watchlist", "watch_tickers": ["A"], "group_by": "ticker"}, "grouped by watched term"),
        ({"kind": "rocket"}, "kind"),
        ({"kind": "surge", "id": "Bad Id"}, "rule id"),
    ]:
        with pytest.raises(ValidationError, match=match):
            Rule(name="r", **bad)


def test_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\nname = "Banks drop"\nkind = "sentiment_drop"\nthreshold = 0.4\n[rule.scope]\ntopic = "banks"\n'
        '[[target]]\nname = "ops"\nurl = "https://hooks.example/x"\nformat = "slack"\n'
    )
    rules, targets = load_file(path)
    assert rules[0].id == "banks-drop" and rules[0].origin == "file" and rules[0].scope.topic == "banks"
    assert targets[0].format == "slack" and targets[0].secret is None
    path.write_text('[[target]]\nname = "ops"\nurl = "https://hooks.example/x"\nsecret = "oops"\n')
    with pytest.raises(RuleFileError, match="secrets never go in files"):
        load_file(path)
    path.write_text('[[rule]]\nname = "x"\nkind = "surge"\nthreshold = -1\n')
    with pytest.raises(RuleFileError, match=r"rule #1 \(x\)"):
        load_file(path)
    path.write_text('[[rules]]\nname = "x"\n')
    with pytest.raises(RuleFileError, match="unknown table"):
        load_file(path)
    with pytest.raises(RuleFileError, match="does not exist"):
        load_file(tmp_path / "missing.toml")


def _settings(**kw: object) -> Settings:
    return load_settings(data_dir="/tmp/finpulse-unit", **kw)


def test_backoff_grows_is_capped_and_jittered() -> None:
    s = _settings(alerts_retry_base_s=1.0, alerts_retry_max_s=30.0)
    assert [backoff_s(s, n, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_s(s, 20, rng=lambda: 1.0) == 30.0
    assert backoff_s(s, 3, rng=lambda: 0.0) == 2.0  # the lower half is never jittered away


def test_mean_std() -> None:
    assert _mean_std([]) == (0.0, 0.0)
    assert _mean_std([2.0, 4.0]) == (3.0, 1.0)


def test_receiver_verifies_fails_first_and_flags_duplicates() -> None:
    state = ReceiverState(secret="k", fail_first=1)
    body = b'{"event":"firing"}'
    signed = sign("k", body, idempotency_key="d1")
    headers = {"X-FinPulse-Signature": signed, "Idempotency-Key": "d1", "X-FinPulse-Event": "firing"}
    bad = {**headers, "X-FinPulse-Signature": sign("wrong", body, idempotency_key="d1")}

    async def exchange() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=build_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return [await client.post("/hook", content=body, headers=h) for h in (headers, headers, headers, bad)]

    failed, first, again, forged = asyncio.run(exchange())
    assert failed.status_code == 500
    assert first.json() == {"ok": True, "duplicate": False} and again.json()["duplicate"] is True
    assert forged.status_code == 401
    assert len(state.received) == 2 and len(state.rejected) == 1


def test_example_rules_file_is_valid() -> None:
    rules, targets = load_file(Path(__file__).resolve().parents[3] / "alerts" / "rules.example.toml")
    assert sorted({r.kind for r in rules}) == ["negative_share", "sentiment_drop", "surge", "volume_spike", "watchlist"]
    assert {t.name for t in targets} >= set(rules[1].targets)
