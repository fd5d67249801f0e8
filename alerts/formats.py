"""Webhook bodies: FinPulse's generic JSON, a Slack incoming-webhook message, an Alertmanager webhook payload.

Generic (``format = "generic"``), documented contract ``finpulse.alert.v1``::

    {"schema": "finpulse.alert.v1", "event": "firing" | "resolved" | "test", "delivery_id": "<idempotency key>",
     "sent_at": "<ISO-8601 UTC>", "alert": {<alerts.alert.Alert: id, fingerprint, rule_id, rule_name, kind,
     severity, status, group_by, group_value, scope, metric, value, threshold, baseline, doc_count, window_start,
     window_end, started_at, resolved_at, silenced, message, sample_doc_ids>}}

Slack: ``{"text": <fallback line>, "blocks": [section (mrkdwn), context]}`` - what incoming webhooks accept.
Alertmanager: the webhook_config payload, version "4" (receiver, status, alerts[] with labels, annotations,
startsAt, endsAt, generatorURL, fingerprint; groupLabels, commonLabels, commonAnnotations, externalURL, groupKey,
truncatedAlerts), so receivers written for Prometheus Alertmanager work unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.alert import Alert

SCHEMA = "finpulse.alert.v1"
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def render(alert: Alert, *, event: str, fmt: str, delivery_id: str, sent_at: datetime, receiver: str) -> dict[str, Any]:
    if fmt == "generic":
        return generic(alert, event=event, delivery_id=delivery_id, sent_at=sent_at)
    if fmt == "slack":
        return slack(alert, event=event)
    if fmt == "alertmanager":
        return alertmanager(alert, receiver=receiver)
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


def slack(alert: Alert, *, event: str) -> dict[str, Any]:
    icon = {"resolved": ":white_check_mark:", "test": ":test_tube:"}.get(
        event,
        {"critical": ":red_circle:", "warning": ":large_orange_circle:"}.get(alert.severity, ":large_blue_circle:"),
    )
    title = _slack_escape(alert.summary())
    details = (
        f"*{alert.metric}* = {alert.value:.3g} (threshold {alert.threshold:.3g}"
        + (f", baseline {alert.baseline:.3g}" if alert.baseline is not None else "")
        + f") over {alert.doc_count} documents, {_iso(alert.window_start)} - {_iso(alert.window_end)}"
    )
    return {
        "text": f"{icon} {title}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{title}*\n{_slack_escape(details)}"}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"rule `{alert.rule_id}` · fingerprint `{alert.fingerprint}`"}],
            },
        ],
    }


def alertmanager(alert: Alert, *, receiver: str) -> dict[str, Any]:
    labels = alert.labels
    annotations = {"summary": alert.summary(), "description": alert.message}
    if alert.sample_doc_ids:
        annotations["sample_doc_ids"] = ",".join(alert.sample_doc_ids)
    item = {
        "status": alert.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(alert.started_at),
        "endsAt": _iso(alert.resolved_at) if alert.resolved_at else _ZERO_TIME,
        "generatorURL": "",
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
        "externalURL": "",
        "alerts": [item],
    }
