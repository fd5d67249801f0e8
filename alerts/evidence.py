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
        return Evidence()
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
        )
        for s in found.stories
    ]
    return Evidence(top_stories=stories, story_count=found.story_count)
