"""Source kinds are registered, one module each: sources.toml tables become their Configs (checked, with the table
and source named in every error), and a kind added as one new file runs through the real worker and pipeline. The
broker is a fake here; tests/integration/ingest/test_sources.py runs the built-in kinds against real Kafka."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ingest.sources
import ingest.worker
from finpulse.contracts import RawDocument
from finpulse.settings import Settings
from ingest.config import IngestConfig, SourceConfigError, build_config, load_sources
from ingest.producer import SendResult
from ingest.sources import build_source, generator, http_json, kind_of, kinds, register, replay, rss

TOY_KIND = '''
"""A toy kind: numbered headlines 0..count-1, then done; the next number is its checkpointed position."""

from dataclasses import dataclass

from ingest.item import Item
from ingest.sources import register
from ingest.sources.base import SourceConfig, SourceConfigError, SourceContext


@dataclass(frozen=True)
class Config(SourceConfig):
    name: str
    count: int = 3
    word: str = "toy"

    def validate(self, table: str) -> None:
        super().validate(table)
        if self.count < 1:
            raise SourceConfigError(f"[{table}] {self.name}: count must be >= 1")


class Source:
    def __init__(self, cfg: Config, batch_size: int) -> None:
        self.cfg, self.name = cfg, cfg.name

    def run(self, ctx: SourceContext) -> None:
        start = int((ctx.position(self.name) or {}).get("next", 0))
        items = [
            Item(title=f"{self.cfg.word} number {i} moves $AAPL", source_id=f"{self.cfg.word}-{i}")
            for i in range(start, self.cfg.count)
        ]
        if items:
            ctx.pipeline.process(self.name, "news", items, {"next": self.cfg.count})
        ctx.ok(self.name)


register("toy", Config, Source)
'''


class FakeProducer:
    """Acknowledges every document and remembers it."""

    def __init__(self) -> None:
        self.sent: list[RawDocument] = []

    def send(self, docs: list[RawDocument]) -> SendResult:
        self.sent.extend(docs)
        return SendResult(watermarks={("t", 0): len(self.sent)})

    def close(self) -> None:
        pass


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def toy_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """One new file, toy.py, in a folder that is part of the ingest.sources package (as a file beside rss.py is)."""
    folder = tmp_path / "kinds"
    folder.mkdir()
    write(folder / "toy.py", TOY_KIND)
    monkeypatch.setattr(ingest.sources, "__path__", [*ingest.sources.__path__, str(folder)])
    monkeypatch.setattr(ingest.sources, "_KINDS", dict(ingest.sources._KINDS))
    yield folder
    sys.modules.pop("ingest.sources.toy", None)


def run_worker(cfg: IngestConfig, monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    """The real Worker (state, pipeline, configured sources) with a fake broker, until its sources finish."""
    producer = FakeProducer()
    monkeypatch.setattr(ingest.worker, "RawProducer", lambda *args: producer)
    monkeypatch.setattr(ingest.worker, "recover", lambda *args: 0)
    worker = ingest.worker.Worker(cfg)
    worker.start(spool=False)  # the configured sources only: the spool's job loop never finishes
    try:
        deadline = time.monotonic() + 30
        while any(t.is_alive() for t in worker.threads) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(t.is_alive() for t in worker.threads), "the sources did not finish in 30 s"
        assert worker.health()["sources"] == {s.name: False for s in cfg.sources}  # ran and returned
    finally:
        worker.stop()
    return producer


def test_a_kind_added_as_one_new_file_runs_through_the_worker(
    toy_kind: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    sources = write(tmp_path / "sources.toml", '[[toy]]\nname = "toy-a"\ncount = 5\nword = "alpha"\n')
    cfg = build_config(settings, sources)
    assert cfg.source_names == ["toy-a"]
    assert type(cfg.sources[0]).__module__ == "ingest.sources.toy"
    assert kind_of(cfg.sources[0]).name == "toy"

    first = run_worker(cfg, monkeypatch)
    assert sorted(d.title for d in first.sent) == [f"alpha number {i} moves $AAPL" for i in range(5)]
    assert {d.source for d in first.sent} == {"toy-a"}
    assert all(d.tickers == ["AAPL"] for d in first.sent)  # the shared path ran: tickers found
    assert len({d.id for d in first.sent}) == 5

    # Same state dir, more to do: the kind's position was checkpointed, so only the new documents go out.
    write(sources, '[[toy]]\nname = "toy-a"\ncount = 7\nword = "alpha"\n')
    second = run_worker(build_config(settings, sources), monkeypatch)
    assert sorted(d.title for d in second.sent) == [f"alpha number {i} moves $AAPL" for i in (5, 6)]


def test_a_new_kinds_own_checks_answer_with_the_table_and_source(toy_kind: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match=r"\[toy\] t: count must be >= 1"):
        load_sources(write(tmp_path / "a.toml", '[[toy]]\nname = "t"\ncount = 0\n'))
    with pytest.raises(SourceConfigError, match=r"\[toy\] t: unknown key\(s\) colour"):
        load_sources(write(tmp_path / "b.toml", '[[toy]]\nname = "t"\ncolour = "red"\n'))


def test_a_kind_without_its_file_is_an_unknown_table(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match=r"unknown table\(s\) toy; known: .*\[\[rss\]\], \[push\]"):
        load_sources(write(tmp_path / "s.toml", '[[toy]]\nname = "t"\n'))


def test_a_kind_name_taken_by_another_module_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest.sources, "_KINDS", dict(kinds()))
    impostor = type("Config", (rss.Config,), {"__module__": "somewhere.else"})
    with pytest.raises(ValueError, match=r"'rss' is registered by ingest\.sources\.rss already"):
        register("rss", impostor, lambda cfg, batch_size: rss.Source(cfg))


def test_every_built_in_table_loads_in_file_order(tmp_path: Path) -> None:
    text = """
[[generator]]
rate = 2

[[rss]]
name = "wire"
url = "https://wire.example/rss"
kind = "comment"

[[http_json]]
name = "api"
url = "https://api.example/v1"
items_path = "data"
pagination = { type = "page", size_param = "n", size = 50 }

[[replay]]
path = "history/ratings.csv"
speed = 600

[push]
enabled = false
"""
    out = load_sources(write(tmp_path / "sources.toml", text))
    assert out["push_enabled"] is False
    gen, feed, api, rep = out["sources"]
    assert gen == generator.Config(rate=2)
    assert feed == rss.Config(name="wire", url="https://wire.example/rss", kind="comment")
    assert api.pagination == http_json.Pagination(type="page", size_param="n", size=50)
    assert rep == replay.Config(name="replay:ratings", path=tmp_path / "history" / "ratings.csv", speed=600)
    built = [build_source(cfg, 100) for cfg in out["sources"]]
    assert [type(s) for s in built] == [generator.Source, rss.Source, http_json.Source, replay.Source]
    assert [s.name for s in built] == ["generator", "wire", "api", "replay:ratings"]
    assert {"rss", "http_json", "replay", "generator"} <= set(kinds())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rss]]\nname = "f"\nurl = "ftp://x"\n', r"\[rss\] f: url must start with http:// or https://"),
        ('[[rss]]\nname = "f"\nurl = "https://x"\ninterval_s = 0\n', r"\[rss\] f: interval_s must be a number > 0"),
        ('[[rss]]\nurl = "https://x"\n', r"\[rss\] \?: .*missing 1 required positional argument: 'name'"),
        ('[[http_json]]\nname = "a"\nurl = "https://x"\nkind = "blog"\n', r"\[http_json\] a: kind must be 'news'"),
        (
            '[[http_json]]\nname = "a"\nurl = "https://x"\npagination = { typ = "page" }\n',
            r"\[http_json.pagination\] \?: unknown key\(s\) typ",
        ),
        ('[[replay]]\npath = "x.csv"\nspeed = -1\n', r"\[replay\] replay:x: speed must be >= 0"),
        ("[[generator]]\nrate = 0\n", r"\[generator\] generator: rate must be a number > 0"),
        ('[rss]\nname = "f"\n', r"use \[\[rss\]\] \(an array of tables\)"),
        ('[[generator]]\nname = "g"\n[[replay]]\nname = "g"\npath = "x.csv"\n', "repeated: g"),
        ("[[rss]\n", "is not valid TOML"),
    ],
)
def test_bad_sources_files_are_answered_with_the_table_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SourceConfigError, match=message):
        load_sources(write(tmp_path / "sources.toml", text))


def test_a_missing_sources_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match=r"sources file .*nope\.toml does not exist"):
        load_sources(tmp_path / "nope.toml")


def test_no_sources_file_runs_the_settings_generator(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ingest_generator_rate=3.0, ingest_generator_scenario="calm")
    cfg = build_config(settings)
    assert cfg.sources == (generator.Config(rate=3.0, scenario="calm"),)
    assert cfg.push_enabled is True
