"""Syncs the rules file (settings.alerts_rules_file) into ClickHouse at engine start.

File rules and targets are upserted when they changed; file-defined ones no longer in the file are deleted.
Rules made in the dashboard (origin 'ui') are never touched. Secrets never go in the file (it lives in a
repository): a file target signs with FINPULSE_ALERTS_WEBHOOK_SECRET.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from alerts import store
from alerts.rules import RuleFileError, load_rules_file
from alerts.targets import WebhookTarget
from finpulse.settings import Settings

log = logging.getLogger(__name__)


def load_file(path: Path) -> tuple[list[Any], list[WebhookTarget]]:
    rules, raw_targets = load_rules_file(path)
    targets: list[WebhookTarget] = []
    for number, entry in enumerate(raw_targets, 1):
        if "secret" in entry:
            raise RuleFileError(
                f"rules file {path}: target #{number} has a secret; secrets never go in files - "
                "set FINPULSE_ALERTS_WEBHOOK_SECRET (or the target's secret in the dashboard)"
            )
        try:
            targets.append(WebhookTarget.model_validate({**entry, "origin": "file"}))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise RuleFileError(f"rules file {path}: target #{number}: {err['loc']}: {err['msg']}") from exc
    return rules, targets


def sync_rules_file(settings: Settings, client: Any, path: Path | None = None) -> dict[str, int]:
    """Upsert the file's rules and targets; returns counts of what changed."""
    path = path or settings.alerts_rules_file
    if path is None:
        return {"saved": 0, "deleted": 0}
    rules, targets = load_file(path)
    saved = deleted = 0
    stored_rules = {r.id: r for r in store.list_rules(settings, client=client)}
    for rule in rules:
        if stored_rules.get(rule.id) != rule:
            store.save_rule(settings, rule, client=client)
            saved += 1
    for rule_id, rule in stored_rules.items():
        if rule.origin == "file" and rule_id not in {r.id for r in rules}:
            store.delete_rule(settings, rule_id, client=client)
            deleted += 1
    stored_targets = {t.name: t for t in store.list_targets(settings, client=client)}
    for target in targets:
        if stored_targets.get(target.name) != target:
            store._write_target(client, target, deleted=False, data_dir=settings.data_dir)
            saved += 1
    for name, target in stored_targets.items():
        if target.origin == "file" and name not in {t.name for t in targets}:
            store.delete_target(settings, name, client=client)
            deleted += 1
    log.info("rules file synced", extra={"path": str(path), "saved": saved, "deleted": deleted})
    return {"saved": saved, "deleted": deleted}
