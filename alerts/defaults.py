"""Default rules, seeded once so a fresh install alerts out of the box.

They are stored like any other rule (origin 'default'), so the dashboard edits or disables them. Seeding writes a
rule only when its id has no row at all in ``alert_rules`` (not even a deleted one): an analyst's edit, disable or
delete survives every restart, and no default ever overwrites an existing row.
"""

from __future__ import annotations

import logging
from typing import Any

from alerts.repository import connect, stored_rule_ids
from alerts.rules import Rule
from alerts.store import save_rule
from finpulse.settings import Settings

log = logging.getLogger(__name__)

# Volumes are sized for the default generator (5 docs/s, ~18 tickers: ~80 docs per ticker in 5 min) and for a
# real feed of a few documents per second; cooldowns keep one burst from paging more than once per half hour.
# Every default counts distinct stories (count='stories'): one wire story syndicated by twenty outlets is one
# negative item, so copies alone never fire a default rule.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        id="default-negative-share-ticker",
        name="Negative share per ticker",
        kind="negative_share",
        severity="warning",
        description="More than 60% of a ticker's stories in 5 minutes are negative (at least 20 stories).",
        group_by="ticker",
        window_s=300,
        threshold=0.6,
        min_volume=20,
        count="stories",
        cooldown_s=1_800,
        origin="default",
    ),
    Rule(
        id="default-negative-surge-topic",
        name="Negative surge per topic",
        kind="surge",
        severity="warning",
        description="A topic's negative stories in 10 minutes are 3 standard deviations above its last 2 hours.",
        group_by="topic",
        window_s=600,
        baseline_s=7_200,
        threshold=3.0,
        min_volume=15,
        metric="count",
        count="stories",
        cooldown_s=1_800,
        origin="default",
    ),
    Rule(
        id="default-sentiment-drop-lang",
        name="Sentiment drop per language",
        kind="sentiment_drop",
        severity="info",
        description="A language's sentiment index ((pos - neg) / total) over 10 minutes falls 0.3 below its last "
        "2 hours (at least 50 stories).",
        group_by="lang",
        window_s=600,
        baseline_s=7_200,
        threshold=0.3,
        min_volume=50,
        count="stories",
        cooldown_s=3_600,
        origin="default",
    ),
)


def seed_default_rules(settings: Settings, client: Any | None = None) -> list[str]:
    """Write the default rules whose ids have never been stored; returns the ids written."""
    ids = [r.id for r in DEFAULT_RULES]
    with connect(settings, client) as c:
        existing = stored_rule_ids(c, ids)
        written = []
        for rule in DEFAULT_RULES:
            if rule.id not in existing:
                save_rule(settings, rule, client=c)
                written.append(rule.id)
    if written:
        log.info("seeded default alert rules", extra={"rules": written})
    return written
