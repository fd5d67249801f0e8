"""Webhook bodies: FinPulse's generic JSON, a Slack incoming-webhook message, an Alertmanager webhook payload.
Each says why the alert fired: its numbers, its top contributing stories and the link to its drill-down.

Generic (``format = "generic"``), documented contract ``finpulse.alert.v1``::

    {"schema": "finpulse.alert.v1", "event": "firing" | "resolved" | "test", "delivery_id": "<idempotency key>",
     "sent_at": "<ISO-8601 UTC>", "alert": {<alerts.alert.Alert: id, fingerprint, rule_id, rule_name, kind,
     severity, status, group_by, group_value, scope, metric, value, threshold, baseline, doc_count, window_start,
     window_end, started_at, resolved_at, silenced, message, sample_doc_ids,
     window_value, window_measure, count, window_s, baseline_s, story_count, dashboard_url,
     top_stories: [{story_id, title, source, url, published_at, sentiment, sentiment_score, copies,
     entity_sentiment, entity_sentiment_score, entity_relevance}], entity, entity_relevance, entity_basis>}}

The fields from ``window_value`` on were added in issue 12, ``entity*`` in issue 14 (a ticker-scoped alert names its
ticker, the ticker's mean relevance in the documents behind it and whether entity- or document-level sentiment was
counted; each top story its sentiment toward that ticker); adding fields keeps v1 backward compatible (receivers
ignore what they do not know), and alerts stored before have their defaults (null, "", 0, []).

Slack: ``{"text": <fallback line>, "blocks": [section (title + numbers), section "Top stories", a section per
story (linked title, source, time, sentiment, copies), actions (button to the drill-down), context]}`` - what
incoming webhooks accept; every text from a document is escaped, so a title cannot ping a channel.
Alertmanager: the webhook_config payload, version "4" (receiver, status, alerts[] with labels, annotations,
startsAt, endsAt, generatorURL, fingerprint; groupLabels, commonLabels, commonAnnotations, externalURL, groupKey,
truncatedAlerts), so receivers written for Prometheus Alertmanager work unchanged. Annotations: summary,
description (the numbers, then the message), story_count, top_stories (one line per story), dashboard_url,
sample_doc_ids, and for ticker-scoped alerts entity, entity_relevance and entity_basis; generatorURL is the
drill-down link and externalURL the dashboard's address. The numbers line of every format ends with the entity and
its relevance for ticker-scoped alerts; a story's line gives the sentiment toward the entity where scored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.alert import Alert, StoryRef

SCHEMA = "finpulse.alert.v1"
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing
_TITLE_CHARS = 200  # a story title in a message, at most
_SLACK_STORIES = 10  # Slack allows 50 blocks a message; the drill-down has the rest


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def render(
    alert: Alert,
    *,
    event: str,
    fmt: str,
    delivery_id: str,
    sent_at: datetime,
    receiver: str,
    external_url: str = "",
) -> dict[str, Any]:
    """The body of one delivery; ``external_url`` is the dashboard's address (Alertmanager's externalURL)."""
    if fmt == "generic":
        return generic(alert, event=event, delivery_id=delivery_id, sent_at=sent_at)
    if fmt == "slack":
        return slack(alert, event=event)
    if fmt == "alertmanager":
        return alertmanager(alert, receiver=receiver, external_url=external_url)
    raise ValueError(f"unknown webhook format {fmt!r}; use generic, slack or alertmanager")


def generic(alert: Alert, *, event: str, delivery_id: str, sent_at: datetime) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "event": event,
        "delivery_id": delivery_id,
        "sent_at": _iso(sent_at),
        "alert": alert.model_dump(mode="json"),
    }


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (<!channel> would ping everyone).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _story_facts(story: StoryRef) -> str:
    """source · time · sentiment (score) · copies: the story's line under its title."""
    parts = [_one_line(story.source, 80), _iso(story.published_at)]
    if story.sentiment or story.sentiment_score is not None:
        score = f" ({story.sentiment_score:+.2f})" if story.sentiment_score is not None else ""
        parts.append(f"{story.sentiment or 'sentiment'}{score}")
    if story.entity_sentiment:
        score = f" ({story.entity_sentiment_score:+.2f})" if story.entity_sentiment_score is not None else ""
        relevance = f", relevance {story.entity_relevance:.2f}" if story.entity_relevance is not None else ""
        parts.append(f"toward the entity: {story.entity_sentiment}{score}{relevance}")
    parts.append(f"{story.copies} {'copy' if story.copies == 1 else 'copies'}")
    return " · ".join(parts)


def _slack_story(story: StoryRef) -> str:
    title = _slack_escape(_one_line(story.title, _TITLE_CHARS) or story.story_id)
    if story.url and story.url.startswith(("http://", "https://")):
        # <url|text>: the url escaped like text, and no '|' that would end it early.
        title = f"<{_slack_escape(story.url).replace('|', '%7C')}|{title}>"
    return f"*{title}*\n{_slack_escape(_story_facts(story))}"


def slack(alert: Alert, *, event: str) -> dict[str, Any]:
    icon = {"resolved": ":white_check_mark:", "test": ":test_tube:"}.get(
        event,
        {"critical": ":red_circle:", "warning": ":large_orange_circle:"}.get(alert.severity, ":large_blue_circle:"),
    )
    title = _slack_escape(alert.summary())
    details = f"{alert.numbers()}\n{_iso(alert.window_start)} - {_iso(alert.window_end)}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{title}*\n{_slack_escape(details)}"}},
    ]
    if alert.top_stories:
        shown = alert.top_stories[:_SLACK_STORIES]
        total = max(alert.story_count, len(alert.top_stories))
        heading = f"*Top stories* ({len(shown)} of {total})" if total > len(shown) else "*Top stories*"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": heading}})
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": _slack_story(s)}} for s in shown]
    if alert.dashboard_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "finpulse-open-alert",
                        "text": {"type": "plain_text", "text": "Open in FinPulse"},
                        "url": alert.dashboard_url,
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"rule `{alert.rule_id}` · fingerprint `{alert.fingerprint}`"}],
        }
    )
    return {"text": f"{icon} {title}", "blocks": blocks}


def _stories_text(alert: Alert) -> str:
    lines = []
    for rank, story in enumerate(alert.top_stories, 1):
        line = f"{rank}. {_one_line(story.title, _TITLE_CHARS) or story.story_id} ({_story_facts(story)})"
        lines.append(line + (f" {story.url}" if story.url else ""))
    return "\n".join(lines)


def alertmanager(alert: Alert, *, receiver: str, external_url: str = "") -> dict[str, Any]:
    labels = alert.labels
    annotations = {"summary": alert.summary(), "description": f"{alert.numbers()}\n{alert.message}".strip()}
    if alert.top_stories:
        annotations["story_count"] = str(max(alert.story_count, len(alert.top_stories)))
        annotations["top_stories"] = _stories_text(alert)
    if alert.dashboard_url:
        annotations["dashboard_url"] = alert.dashboard_url
    if alert.sample_doc_ids:
        annotations["sample_doc_ids"] = ",".join(alert.sample_doc_ids)
    if alert.entity:
        annotations["entity"] = alert.entity
        annotations["entity_basis"] = alert.entity_basis
        if alert.entity_relevance is not None:
            annotations["entity_relevance"] = f"{alert.entity_relevance:.4g}"
    item = {
        "status": alert.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(alert.started_at),
        "endsAt": _iso(alert.resolved_at) if alert.resolved_at else _ZERO_TIME,
        "generatorURL": alert.dashboard_url,
        "fingerprint": alert.fingerprint,
    }
    group_labels = {"alertname": alert.rule_name}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="' + alert.rule_name.replace('"', '\\"') + '"}',
        "truncatedAlerts": 0,
        "status": alert.status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url.rstrip("/"),
        "alerts": [item],
    }
