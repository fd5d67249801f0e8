"""Evaluates one rule at one instant: per group, the measured value and whether the condition holds.

Pure computation over the shared queries (warehouse/queries/alerts.py); the clock is an argument, so tests choose
``now`` and write documents around it. Windows end at ``now`` floored to the minute (the current minute is still
filling) and are whole minutes long, matching the per-minute rollup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alerts.rules import Rule
from warehouse.queries import alerts as q

# z-scores divide by the baseline's standard deviation; a flat baseline (often all zeros) would make any change
# infinite, so the deviation is at least this much (in documents, or in share for metric='share').
MIN_STD_COUNT = 1.0
MIN_STD_SHARE = 0.05


@dataclass(frozen=True)
class Observation:
    group: str
    fires: bool
    metric: str
    value: float
    threshold: float
    baseline: float | None
    doc_count: int
    window_start: datetime
    window_end: datetime
    message: str
    sample_ids: list[str] = field(default_factory=list)
    # For the alert's numbers: what the window measured, in the rule's unit, when ``value`` is derived from it
    # (a z-score, a drop), and what that figure (and ``baseline``) counts.
    window_value: float | None = None
    measure: str = ""


def window_end(now: datetime) -> int:
    return int(now.timestamp()) // 60 * 60


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _scope(rule: Rule) -> dict[str, str | None]:
    return rule.scope.model_dump()


def _unit(rule: Rule, n: int) -> str:
    """What the rule counts, for messages: 'stories' / 'documents', singular for one."""
    return {"stories": "story", "documents": "document"}[rule.count] if n == 1 else rule.count


def evaluate(client: Any, rule: Rule, now: datetime) -> dict[str, Observation]:
    """Observations by group value ('' when the rule is not grouped; 'ticker:X' / 'keyword:y' for watchlists)."""
    if rule.kind == "negative_share":
        return _negative_share(client, rule, now)
    if rule.kind == "watchlist":
        return _watchlist(client, rule, now)
    return _against_baseline(client, rule, now)


def _window_counts(client: Any, rule: Rule, start: int, end: int) -> list[q.BucketCounts]:
    """The rule's counts per group in windows of rule.window_s between start and end, within its scope."""
    return q.window_counts(
        client,
        start=start,
        end=end,
        bucket_s=rule.window_s,
        group_by=rule.group_by,
        scope=_scope(rule),
        use_documents=rule.uses_documents,
        count=rule.count,
    )


def _negative_share(client: Any, rule: Rule, now: datetime) -> dict[str, Observation]:
    end = window_end(now)
    start = end - rule.window_s
    rows = _window_counts(client, rule, start, end)
    out: dict[str, Observation] = {}
    minutes = rule.window_s // 60
    for row in rows:
        share = row.negative / row.classified if row.classified else 0.0
        fires = row.classified >= rule.min_volume and share > rule.threshold
        out[row.group] = Observation(
            group=row.group,
            fires=fires,
            metric="negative_share",
            measure=f"negative share of {rule.count}",
            value=round(share, 6),
            threshold=rule.threshold,
            baseline=None,
            doc_count=row.classified,
            window_start=_dt(start),
            window_end=_dt(end),
            message=f"{share:.0%} of {row.classified} {rule.count} negative in the last {minutes} min "
            f"(threshold {rule.threshold:.0%}, minimum {rule.min_volume} {rule.count})",
        )
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _against_baseline(client: Any, rule: Rule, now: datetime) -> dict[str, Observation]:
    """surge, volume_spike and sentiment_drop: the last window against the trailing baseline windows."""
    end = window_end(now)
    n = rule.baseline_s // rule.window_s  # baseline windows
    start = end - (n + 1) * rule.window_s
    rows = _window_counts(client, rule, start, end)
    buckets: dict[str, list[q.BucketCounts | None]] = {}
    for row in rows:
        buckets.setdefault(row.group, [None] * (n + 1))[row.bucket] = row
    out: dict[str, Observation] = {}
    w_start, w_end = _dt(end - rule.window_s), _dt(end)
    minutes = rule.window_s // 60
    # A baseline needs history: on a fresh install (or a new scope) the trailing windows are empty, their mean is ~0
    # and any first burst of ordinary news would be a "surge". Nothing fires until data reaches back over at least
    # half of the baseline (judged over every group in scope, so a rare group's quiet past still counts as quiet).
    first_bucket = min((row.bucket for row in rows), default=n)
    formed = first_bucket <= n // 2
    not_formed = (
        ""
        if formed
        else f"; baseline not formed yet (data only since {_dt(start + first_bucket * rule.window_s):%H:%M} UTC)"
    )
    for group, series in buckets.items():
        cur = series[n] or q.BucketCounts(group, n, 0, 0, 0, 0)
        base = [b or q.BucketCounts(group, i, 0, 0, 0, 0) for i, b in enumerate(series[:n])]
        volume_ok = cur.total >= rule.min_volume
        if rule.kind == "sentiment_drop":
            base_classified = sum(b.classified for b in base)
            cur_index = (cur.positive - cur.negative) / cur.classified if cur.classified else 0.0
            base_index = (
                (sum(b.positive for b in base) - sum(b.negative for b in base)) / base_classified
                if base_classified
                else 0.0
            )
            drop = base_index - cur_index
            fires = (
                formed
                and cur.classified >= rule.min_volume
                and base_classified >= rule.min_volume
                and drop >= rule.threshold
            )
            out[group] = Observation(
                group=group,
                fires=fires,
                metric="sentiment_index_drop",
                measure="sentiment index",
                window_value=round(cur_index, 6),
                value=round(drop, 6),
                threshold=rule.threshold,
                baseline=round(base_index, 6),
                doc_count=cur.classified,
                window_start=w_start,
                window_end=w_end,
                message=f"sentiment index fell from {base_index:+.2f} to {cur_index:+.2f} "
                f"({cur.classified} {rule.count} in the last {minutes} min; drop threshold {rule.threshold:.2f})"
                + not_formed,
            )
            continue
        if rule.kind == "volume_spike":
            metric, xs, x, floor = "volume_z", [float(b.total) for b in base], float(cur.total), MIN_STD_COUNT
        elif rule.metric == "share":
            xs = [b.negative / b.classified for b in base if b.classified]
            x = cur.negative / cur.classified if cur.classified else 0.0
            metric, floor = "negative_share_z", MIN_STD_SHARE
        else:
            metric, xs, x, floor = (
                "negative_count_z",
                [float(b.negative) for b in base],
                float(cur.negative),
                MIN_STD_COUNT,
            )
        mean, std = _mean_std(xs)
        z = (x - mean) / max(std, floor)
        what = (
            rule.count
            if rule.kind == "volume_spike"
            else "negative " + ("share" if rule.metric == "share" else rule.count)
        )
        out[group] = Observation(
            group=group,
            fires=formed and volume_ok and z >= rule.threshold,
            metric=metric,
            measure=what,
            window_value=round(x, 6),
            value=round(z, 4),
            threshold=rule.threshold,
            baseline=round(mean, 6),
            doc_count=cur.total,
            window_start=w_start,
            window_end=w_end,
            message=f"{what}: {x:.3g} in the last {minutes} min vs baseline mean {mean:.3g} (sd {std:.3g}), "
            f"z = {z:.1f} (threshold {rule.threshold:g}, {cur.total} {rule.count})" + not_formed,
        )
    return out


def _watchlist(client: Any, rule: Rule, now: datetime) -> dict[str, Observation]:
    end = window_end(now)
    start = end - rule.window_s
    hits = q.watchlist_hits(
        client,
        start=start,
        end=end,
        tickers=rule.watch_tickers,
        keywords=rule.watch_keywords,
        scope=_scope(rule),
        count=rule.count,
    )
    terms = [f"ticker:{t}" for t in rule.watch_tickers] + [f"keyword:{k}" for k in rule.watch_keywords]
    out: dict[str, Observation] = {}
    minutes = rule.window_s // 60
    for term in terms:
        count, sample = hits.get(term, (0, []))
        if not count:
            continue  # absent = condition false; the engine resolves what was firing
        out[term] = Observation(
            group=term,
            fires=count >= rule.threshold,
            metric="negative_mentions",
            measure=f"negative {rule.count} mentioning {term.split(':', 1)[1]}",
            value=float(count),
            threshold=rule.threshold,
            baseline=None,
            doc_count=count,
            window_start=_dt(start),
            window_end=_dt(end),
            message=f"{count} negative {_unit(rule, count)} {'mentions' if count == 1 else 'mention'} "
            f"{term.split(':', 1)[1]} in the last {minutes} min",
            sample_ids=sample,
        )
    return out


def sample_ids(client: Any, rule: Rule, obs: Observation, limit: int = 5) -> list[str]:
    """The newest documents behind a firing observation (watchlists already carry theirs)."""
    if obs.sample_ids or rule.kind == "watchlist":
        return list(obs.sample_ids)
    return q.sample_document_ids(
        client,
        start=int(obs.window_start.timestamp()),
        end=int(obs.window_end.timestamp()),
        group_by=rule.group_by,
        group=obs.group,
        scope=_scope(rule),
        negative_only=rule.kind != "volume_spike",
        limit=limit,
    )
