"""Alert rules: the typed model every rule source (TOML file, the dashboard) produces, and the TOML loader.

A rule is evaluated per *group*: ``group_by`` splits its scope by one dimension (e.g. one alert per ticker), and
each group's fingerprint (rule id + group value) is what pending, cooldown, silences and resolution track.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finpulse.toml_config import load_toml

RuleKind = Literal["negative_share", "surge", "volume_spike", "sentiment_drop", "watchlist"]
RULE_KINDS: tuple[str, ...] = ("negative_share", "surge", "volume_spike", "sentiment_drop", "watchlist")
Severity = Literal["info", "warning", "critical"]
GroupBy = Literal["none", "topic", "ticker", "source", "lang"]
CountBy = Literal["stories", "documents"]
COUNT_BY: tuple[str, ...] = ("stories", "documents")

_ID = re.compile(r"^[a-z0-9][a-z0-9_\-.]{0,63}$")


class RuleFileError(ValueError):
    """The rules/targets TOML file is missing or invalid; the message names the file and the entry."""


def slug(text: str) -> str:
    """An id from a display name: lower case, [a-z0-9_-], at most 64 characters."""
    value = re.sub(r"[^a-z0-9_\-.]+", "-", text.strip().lower()).strip("-.")
    return value[:64] or "rule"


class Scope(BaseModel):
    """Which documents a rule looks at; an unset field means 'any'."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str | None = Field(None, max_length=200)
    ticker: str | None = Field(None, max_length=20)
    source: str | None = Field(None, max_length=200)
    lang: str | None = Field(None, max_length=8)

    @field_validator("topic", "ticker", "source", "lang", mode="before")
    @classmethod
    def _blank_is_any(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ticker")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.strip().upper() if value else value

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.model_dump().items() if v]
        return ", ".join(parts) or "all documents"


class Rule(BaseModel):
    """One alert rule. ``threshold`` means, by kind:

    * negative_share - share of negative documents in the window (0..1), fires when above;
    * surge - z-score of the window's negative count (``metric='count'``) or share (``'share'``) against the
      trailing baseline windows, fires when at or above;
    * volume_spike - z-score of the window's document count against the baseline;
    * sentiment_drop - fall of the sentiment index ((pos - neg) / total) from the baseline, fires when at or above;
    * watchlist - negative documents in the window mentioning a watched ticker or keyword, fires when at or above
      (one alert per watched term).

    ``count`` says what every figure of the rule counts (window, baseline, ``min_volume``, a watchlist's
    threshold): ``"stories"`` (the default) counts distinct stories (``story_id``), so a wire story syndicated by
    twenty outlets is one negative item; ``"documents"`` counts every copy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field("", description="Stable id ([a-z0-9_-.]); derived from the name when empty.")
    name: str = Field(min_length=1, max_length=200)
    kind: RuleKind
    enabled: bool = True
    severity: Severity = "warning"
    description: str = Field("", max_length=2_000)
    scope: Scope = Field(default_factory=Scope)
    group_by: GroupBy = "none"
    window_s: int = Field(900, ge=60, le=7 * 86_400, description="Evaluation window (whole minutes).")
    baseline_s: int = Field(6 * 3_600, ge=120, le=90 * 86_400, description="Trailing baseline before the window.")
    threshold: float = Field(0.5, description="See the class docstring; its meaning depends on the kind.")
    min_volume: int = Field(
        10,
        ge=0,
        description="Fewer stories (documents with count='documents') in the window (or baseline) never fire; "
        "watchlists ignore it.",
    )
    metric: Literal["count", "share"] = Field("count", description="surge only: z-score of the count or share.")
    count: CountBy = Field(
        "stories", description="What the rule counts: distinct stories (copies of one story count once) or documents."
    )
    watch_tickers: list[str] = Field(default_factory=list, max_length=500)
    watch_keywords: list[str] = Field(default_factory=list, max_length=500)
    pending_s: int = Field(0, ge=0, description="The condition must hold this long before the alert fires.")
    cooldown_s: int = Field(1_800, ge=0, description="After resolving, the same fingerprint stays quiet this long.")
    targets: list[str] = Field(default_factory=list, description="Webhook target names; empty = every target.")
    origin: Literal["file", "ui", "default"] = Field("ui", description="Where the rule was defined.")

    @field_validator("count", mode="before")
    @classmethod
    def _count_word(cls, value: Any) -> Any:
        # 'Stories' / ' documents ' from a hand-written file or form mean the same; anything else fails the Literal.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("watch_tickers")
    @classmethod
    def _tickers(cls, value: list[str]) -> list[str]:
        return sorted({t.strip().upper() for t in value if t.strip()})

    @field_validator("watch_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        return sorted({k.strip() for k in value if k.strip()})

    @model_validator(mode="before")
    @classmethod
    def _derive_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("id") and isinstance(data.get("name"), str):
            data = {**data, "id": slug(data["name"])}
        return data

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not _ID.match(self.id):
            raise ValueError(f"rule id {self.id!r} must match {_ID.pattern}")
        if self.window_s % 60:
            raise ValueError("window_s must be whole minutes (the rollup is per minute)")
        if self.kind in ("surge", "volume_spike", "sentiment_drop") and self.baseline_s < 2 * self.window_s:
            raise ValueError(f"{self.kind}: baseline_s must cover at least two windows ({2 * self.window_s}s)")
        if self.kind == "negative_share" and not 0 < self.threshold < 1:
            raise ValueError("negative_share: threshold is a share between 0 and 1")
        if self.kind == "watchlist":
            if not (self.watch_tickers or self.watch_keywords):
                raise ValueError("watchlist: name at least one of watch_tickers / watch_keywords")
            if self.group_by != "none":
                raise ValueError("watchlist: alerts are grouped by watched term; leave group_by = 'none'")
        if self.threshold <= 0 and self.kind != "negative_share":
            raise ValueError(f"{self.kind}: threshold must be positive")
        return self

    @property
    def uses_documents(self) -> bool:
        """The per-minute rollup has no language and no text: these rules read documents instead."""
        return self.kind == "watchlist" or self.scope.lang is not None or self.group_by == "lang"

    def fingerprint(self, group: str) -> str:
        """Stable identity of one alert series: the rule and its group value."""
        return hashlib.sha256(f"{self.id}\x1f{group}".encode()).hexdigest()[:16]


def load_rules_file(path: Path) -> tuple[list[Rule], list[dict[str, Any]]]:
    """Rules (``[[rule]]``) and raw webhook target tables (``[[target]]``) from a TOML file.

    Targets are returned raw because their secrets are resolved against the settings by the caller.
    """
    raw = load_toml(path, error=RuleFileError, what="rules file", hint="check FINPULSE_ALERTS_RULES_FILE")
    unknown = sorted(set(raw) - {"rule", "target"})
    if unknown:
        raise RuleFileError(f"rules file {path}: unknown table(s) {', '.join(unknown)}; use [[rule]] and [[target]]")
    rules: list[Rule] = []
    for number, entry in enumerate(raw.get("rule", []), 1):
        try:
            rules.append(Rule.model_validate({**entry, "origin": "file"}))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "rule"
            raise RuleFileError(
                f"rules file {path}: rule #{number} ({entry.get('name', '?')}): {where}: {err['msg']}"
            ) from exc
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuleFileError(f"rules file {path}: duplicate rule id(s) {', '.join(duplicates)}")
    return rules, list(raw.get("target", []))
