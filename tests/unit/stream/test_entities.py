"""stream/entities.py without ClickHouse: which entities are scored, the rows they give, swaps of a newly promoted
entity model, and failures that skip entity rows without touching the documents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest

from finpulse.contracts import ClassifiedDocument, make_raw
from finpulse.settings import load_settings
from stream.entities import ENTITY_COLUMNS, EntityStage, mention_for, targets
from tests.entity_engines import BrokenEngine, ClauseEngine
from warehouse.schema import DOCUMENT_COLUMNS, document_row

NAMES = {"AAPL": ["Apple", "苹果公司"], "MSFT": ["Microsoft"]}
ID = DOCUMENT_COLUMNS.index("id")
NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)


def _settings(tmp_path: Any, **kw: Any) -> Any:
    return load_settings(data_dir=tmp_path, entity_max_per_doc=kw.pop("max_per_doc", 5), **kw)


def _row(title: str, tickers: list[str], entities: list[str] | None = None, lang: str = "en") -> list[Any]:
    raw = make_raw(source="wire", kind="news", title=title, published_at=NOW, tickers=tickers,
                   entities=entities or [], lang=lang)  # fmt: skip
    doc = ClassifiedDocument.model_construct(**dict(raw), topic="Earnings", sentiment="positive",
                                             sentiment_score=0.7, model_version="doc@1", classified_at=NOW)  # fmt: skip
    return document_row(doc)


def test_mentions_use_the_company_name_the_text_names() -> None:
    assert mention_for("AAPL", "Apple cuts prices", ["Apple"], NAMES) == "Apple"
    assert mention_for("AAPL", "$AAPL cuts prices", ["Apple"], NAMES) == "AAPL"
    assert mention_for("GLOBEX", "rival Globex warns", [], NAMES) == "GLOBEX", "case-insensitive ticker match"
    assert mention_for("MSFT", "nothing here", ["Apple"], NAMES) == "MSFT", "no name of that ticker: the ticker"


def test_targets_keep_ingest_order_cap_and_dedup() -> None:
    text = "Apple and Microsoft and Globex"
    found = targets(["AAPL", "MSFT", "aapl", "GLOBEX"], ["Apple", "Microsoft", "Initech"], text, NAMES, 5)
    assert found == [("AAPL", "Apple"), ("MSFT", "Microsoft"), ("GLOBEX", "GLOBEX"), ("Initech", "Initech")]
    assert targets(["AAPL", "MSFT", "GLOBEX"], [], text, NAMES, 2) == [("AAPL", "Apple"), ("MSFT", "Microsoft")]
    assert targets([], [], text, NAMES, 5) == []


def test_rows_give_entity_sentiment_per_ticker(tmp_path: Any) -> None:
    engine = ClauseEngine()
    stage = EntityStage(_settings(tmp_path), engine=engine)
    doc = _row("Acme beats estimates while rival Globex warns on revenue", ["ACME", "GLOBEX"])
    plain = _row("Markets are calm", [])
    rows = stage.rows([doc, plain])
    by = {r[1]: dict(zip(ENTITY_COLUMNS, r, strict=True)) for r in rows}
    assert set(by) == {"ACME", "GLOBEX"}, "a document without tickers gives no rows"
    assert by["ACME"]["sentiment"] == "positive" and by["GLOBEX"]["sentiment"] == "negative"
    assert (by["ACME"]["rank"], by["GLOBEX"]["rank"]) == (0, 1)
    assert by["GLOBEX"]["relevance"] == pytest.approx(0.6) and by["GLOBEX"]["sentiment_score"] == pytest.approx(-0.8)
    assert by["GLOBEX"]["document_id"] == doc[ID] and by["GLOBEX"]["model_version"] == "entity-test@1"
    assert by["GLOBEX"]["published_at"] == NOW and by["GLOBEX"]["classified_at"] == NOW
    assert engine.calls == [[("Acme beats estimates while rival Globex warns on revenue", ["ACME", "GLOBEX"])]]
    assert stage.rows([doc]) == [r for r in rows if r[0] == doc[ID]], "a redelivery gives the same rows"
    assert stage.metrics.inference._sum.get() > 0  # type: ignore[attr-defined]


def test_at_most_entity_max_per_doc(tmp_path: Any) -> None:
    engine = ClauseEngine()
    stage = EntityStage(_settings(tmp_path, max_per_doc=2), engine=engine)
    rows = stage.rows([_row("A1 B2 C3 D4", ["A1", "B2", "C3", "D4"])])
    assert [r[1] for r in rows] == ["A1", "B2"] and engine.calls[0][0][1] == ["A1", "B2"]


def test_failures_skip_entity_rows_with_a_reason(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    doc = _row("Globex warns", ["GLOBEX"])
    broken = EntityStage(_settings(tmp_path), engine=BrokenEngine())
    assert broken.rows([doc]) == []
    assert broken.metrics.skipped.labels("engine_error")._value.get() == 1  # type: ignore[attr-defined]
    assert "entity model raised RuntimeError" in caplog.text
    zh = EntityStage(_settings(tmp_path), engine=ClauseEngine(languages=("en",)))
    assert zh.rows([_row("腾讯 发布 警告", ["0700.HK"], lang="zh")]) == []
    assert zh.metrics.skipped.labels("language")._value.get() == 1  # type: ignore[attr-defined]
    none = EntityStage(_settings(tmp_path), probe=lambda s: None, loader=lambda s: None)
    assert none.rows([doc]) == [] and none.metrics.skipped.labels("no_model")._value.get() == 1  # type: ignore[attr-defined]
    text = generate_latest(none.metrics.registry).decode()
    assert 'finpulse_stream_entity_rows_skipped_total{reason="no_model"} 1.0' in text


def test_newly_promoted_entity_model_is_picked_up(tmp_path: Any) -> None:
    clock = [0.0]
    promoted: list[str | None] = [None]
    loads: list[str] = []

    def load(settings: Any) -> Any:
        loads.append(str(promoted[0]))
        if promoted[0] == "bad@3":
            raise RuntimeError("corrupt")
        return ClauseEngine(version=str(promoted[0]))

    stage = EntityStage(_settings(tmp_path, stream_model_poll_s=5), probe=lambda s: promoted[0], loader=load,
                        clock=lambda: clock[0])  # fmt: skip
    doc = _row("Globex warns", ["GLOBEX"])
    assert stage.rows([doc]) == []
    promoted[0] = "e@1"
    assert stage.rows([doc]) == [], "not polled again before stream_model_poll_s"
    clock[0] = 5.0
    assert [r[9] for r in stage.rows([doc])] == ["e@1"]
    promoted[0], clock[0] = "e@2", 10.0
    assert [r[9] for r in stage.rows([doc])] == ["e@2"] and stage.metrics.swaps._value.get() == 1  # type: ignore[attr-defined]
    promoted[0], clock[0] = "bad@3", 15.0
    assert [r[9] for r in stage.rows([doc])] == ["e@2"], "a model that does not load: the previous one stays"
    clock[0] = 20.0
    stage.rows([doc])
    assert loads == ["e@1", "e@2", "bad@3"], "a broken version is not reloaded every poll"


def test_stream_stage_serves_a_real_entity_model_and_picks_up_a_new_one(tmp_path: Any) -> None:
    """A tiny entity model trained through classifier/entity/linear.py, promoted in the registry: the stage loads it
    on its first poll and a newly promoted one on a later poll (the default probe and loader, no injection)."""
    import pandas as pd

    from classifier.entity import convert
    from classifier.entity.linear import train_entity
    from tests.models import micro_encoder
    from tests.unit.classifier.test_entity import contrast_rows

    data = tmp_path / "data"
    (data / "en").mkdir(parents=True)
    pd.DataFrame(contrast_rows(240)).to_csv(data / convert.FIQA_FILE, index=False)
    settings = _settings(tmp_path / "home", shared_data_dir=data, stream_model_poll_s=5)
    first = train_entity(settings, data_root=data, name="ent-a", promote=True)
    clock = [0.0]
    stage = EntityStage(settings, clock=lambda: clock[0])
    doc = _row("Initech beats estimates while rival Hooli warns on revenue", ["INITECH", "HOOLI"])
    rows = {r[1]: r for r in stage.rows([doc])}
    assert stage.model_version == first.model_version and rows["INITECH"][9] == first.model_version
    assert (rows["INITECH"][6], rows["HOOLI"][6]) == ("positive", "negative")
    assert all(0.0 <= r[8] <= 1.0 and -1.0 <= r[7] <= 1.0 for r in rows.values())
    # the next one carries a fine-tuned pair classifier (classifier/entity/tuned.py, on a micro encoder)
    tuned_base = str(micro_encoder(tmp_path / "micro"))
    second = train_entity(settings, data_root=data, name="ent-b", promote=True, seed=7, tune_base=tuned_base)
    stage.rows([doc])
    assert stage.model_version == first.model_version, "not polled again before stream_model_poll_s"
    clock[0] = 5.0
    served = stage.rows([doc])
    assert {r[9] for r in served} == {second.model_version} and {r[1] for r in served} == {"INITECH", "HOOLI"}
    assert all(r[6] in ("negative", "neutral", "positive") and -1.0 <= r[7] <= 1.0 for r in served)
    assert stage.metrics.swaps._value.get() == 1  # type: ignore[attr-defined]


def test_bench_documents_name_companies_ingest_finds() -> None:
    from stream.batch import decode
    from stream.entity_bench import messages

    decoded = decode(messages(12))
    assert len(decoded.docs) == 12 and not decoded.rejects
    assert all(1 <= len(d.tickers) <= 3 for d in decoded.docs) and decoded.docs[0].tickers == ["AAPL", "INTC"]
