"""Why an alert fired: the stories behind a firing observation, and the alert's drill-down link.

The stories are the observation's window in the rule's scope and group (negative documents for every rule but a
volume spike; a watchlist term's own documents), grouped by story and ranked by copies, then negativity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from alerts.alert import StoryRef, utc
from alerts.evaluator import Observation
from alerts.rules import Rule
from warehouse.queries import alerts as q

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evidence:
    top_stories: list[StoryRef] = field(default_factory=list)
    story_count: int = 0
    # The ticker in focus (ticker group, scope or watched ticker), its mean relevance over the documents behind the
    # alert that the entity model scored, and which sentiment they were counted by (entity | document | mixed).
    entity: str = ""
    entity_relevance: float | None = None
    entity_basis: str = ""


def focus_entity(rule: Rule, obs: Observation) -> str:
    """The ticker an alert is about: its ticker group, a watched ticker, or the ticker of its scope ('' if none)."""
    if rule.kind == "watchlist":
        kind, _, term = obs.group.partition(":")
        return term if kind == "ticker" else ""
    if rule.group_by == "ticker":
        return obs.group
    return rule.scope.ticker or ""


def stories_behind(client: Any, rule: Rule, obs: Observation, *, limit: int) -> Evidence:
    """The top ``limit`` stories behind ``obs`` and how many stories there are in all. Never raises: an alert
    whose evidence cannot be read still fires (without stories), and the failure is logged."""
    ticker = keyword = ""
    group_by, group = rule.group_by, obs.group
    if rule.kind == "watchlist":  # groups are watched terms: 'ticker:ACME' / 'keyword:default'
        kind, _, term = obs.group.partition(":")
        ticker, keyword = (term, "") if kind == "ticker" else ("", term)
        group_by, group = "none", ""
    try:
        found = q.top_stories(
            client,
            start=int(obs.window_start.timestamp()),
            end=int(obs.window_end.timestamp()),
            group_by=group_by,
            group=group,
            scope=rule.scope.model_dump(),
            negative_only=rule.kind != "volume_spike",
            ticker=ticker,
            keyword=keyword,
            limit=limit,
        )
    except Exception:  # the alert matters more than its evidence
        log.exception("top stories of an alert could not be read", extra={"rule_id": rule.id, "group": obs.group})
        return Evidence(entity=focus_entity(rule, obs))
    stories = [
        StoryRef(
            story_id=s.story_id,
            title=s.title,
            source=s.source,
            url=s.url or None,
            published_at=utc(s.published_at),
            sentiment=s.sentiment or None,
            sentiment_score=None if s.sentiment_score is None else round(s.sentiment_score, 4),
            copies=s.copies,
            entity_sentiment=s.entity_sentiment,
            entity_sentiment_score=None if s.entity_score is None else round(s.entity_score, 4),
            entity_relevance=None if s.entity_relevance is None else round(s.entity_relevance, 4),
        )
        for s in found.stories
    ]
    relevance = None if found.entity_relevance is None else round(found.entity_relevance, 4)
    return Evidence(
        top_stories=stories,
        story_count=found.story_count,
        entity=found.entity or focus_entity(rule, obs),
        entity_relevance=relevance,
        entity_basis=found.basis,
    )
