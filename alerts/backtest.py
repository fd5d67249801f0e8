"""Try a rule on history: replay the evaluator over stored data and say when the rule would have fired.

The evaluator (alerts/evaluator.py) itself is replayed, once per minute of the range (its windows are whole
minutes, so a minute is the finest step that changes anything), through a *replay client*: the stored counts are
fetched once per backtest (per-minute buckets over the whole range), and every query the evaluator makes at an
instant is answered from them in memory. The backtest therefore computes exactly what the engine would have, with
a few queries instead of one per minute. What the engine adds on top (pending, cooldown, resolution) is replayed
per group by the same rules as alerts/engine.py.

Counting: document counts add up minute by minute; distinct stories do not (a story's copies span minutes), so a
rule counting stories fetches (minute, story) pairs and counts each story once per sliding window.

``backtest(client, rule, start=..., end=...)`` is pure (the clock is an argument): the CLI (`finpulse alerts
backtest`) and the dashboard's rule editor both call it, for a stored rule or one not saved yet.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from alerts.evaluator import Observation, evaluate
from alerts.rules import Rule
from warehouse.queries import alerts as q

MINUTE = 60
MAX_RANGE_S = 90 * 86_400  # the rollup's retention is in days; a longer replay says so instead of running for ages
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 7 * 86_400}

Progress = Callable[[int, int], None]


class BacktestError(ValueError):
    """The backtest cannot run as asked (bad range, a rule it cannot replay); the message says why."""


def parse_since(text: str) -> int:
    """'7d', '12h', '90m', '3600s', '2w' -> seconds; at least one minute, at most MAX_RANGE_S."""
    match = _SINCE.match(text or "")
    if not match:
        raise BacktestError(f"--since {text!r}: write a number and a unit, e.g. 7d, 12h, 90m (units s, m, h, d, w)")
    seconds = round(float(match.group(1)) * _UNIT_S[match.group(2).lower()])
    if seconds < MINUTE:
        raise BacktestError(f"--since {text!r}: the range must cover at least one minute")
    if seconds > MAX_RANGE_S:
        raise BacktestError(f"--since {text!r}: at most {MAX_RANGE_S // 86_400} days")
    return seconds


# --- results --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """One alert the engine would have raised: fired at ``fired_at``, resolved at ``resolved_at`` (None: still
    firing at the end of the range)."""

    group: str
    fired_at: datetime
    resolved_at: datetime | None
    value: float
    peak: float
    doc_count: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "fired_at": self.fired_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "value": self.value,
            "peak": self.peak,
            "doc_count": self.doc_count,
            "message": self.message,
        }


@dataclass
class GroupSeries:
    """The metric of one group at every minute where its window had the rule's volume (window end, value,
    condition); below that volume nothing fires and the replay does not evaluate the group."""

    group: str
    times: list[int] = field(default_factory=list)  # window ends, Unix seconds
    values: list[float] = field(default_factory=list)
    conditions: list[bool] = field(default_factory=list)
    firings: list[Firing] = field(default_factory=list)


@dataclass
class BacktestResult:
    rule: Rule
    start: datetime
    end: datetime
    step_s: int
    metric: str
    threshold: float
    counting: str  # "documents" | "stories": what the replay counted
    groups: dict[str, GroupSeries]
    steps: int
    queries: int
    elapsed_s: float

    @property
    def firings(self) -> list[Firing]:
        return sorted((f for g in self.groups.values() for f in g.firings), key=lambda f: (f.fired_at, f.group))

    @property
    def firing_count(self) -> int:
        return sum(len(g.firings) for g in self.groups.values())

    def frame(self) -> pd.DataFrame:
        """Long form for charts: time, group, value, threshold, condition (held), fired (an alert started here)."""
        fired = {(f.group, int(f.fired_at.timestamp())) for f in self.firings}
        rows = [
            (t, g.group, v, c, (g.group, t) in fired)
            for g in self.groups.values()
            for t, v, c in zip(g.times, g.values, g.conditions, strict=True)
        ]
        df = pd.DataFrame(rows, columns=["t", "group", "value", "condition", "fired"])
        df.insert(0, "time", pd.to_datetime(df["t"], unit="s", utc=True))
        df["threshold"] = self.threshold
        return df.drop(columns="t")

    def to_dict(self, *, series: str = "firing") -> dict[str, Any]:
        """JSON-ready. ``series``: 'all' groups' metric series, 'firing' (groups that fired) or 'none'."""
        out_groups = []
        for g in sorted(self.groups.values(), key=lambda g: g.group):
            entry: dict[str, Any] = {
                "group": g.group,
                "firings": len(g.firings),
                "minutes_at_volume": len(g.times),
                "minutes_condition_true": sum(g.conditions),
                "max_value": max(g.values) if g.values else None,
                "intervals": [f.to_dict() for f in g.firings],
            }
            if series == "all" or (series == "firing" and g.firings):
                entry["series"] = {
                    "time": [datetime.fromtimestamp(t, UTC).isoformat() for t in g.times],
                    "value": g.values,
                    "condition": g.conditions,
                }
            out_groups.append(entry)
        return {
            "rule": {
                "id": self.rule.id,
                "name": self.rule.name,
                "kind": self.rule.kind,
                "group_by": self.rule.group_by,
            },
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "step_s": self.step_s,
            "metric": self.metric,
            "threshold": self.threshold,
            "counting": self.counting,
            "cooldown_s": self.rule.cooldown_s,
            "pending_s": self.rule.pending_s,
            "firing_count": self.firing_count,
            "groups_fired": sum(1 for g in self.groups.values() if g.firings),
            "groups_evaluated": len(self.groups),
            "steps": self.steps,
            "queries": self.queries,
            "elapsed_s": round(self.elapsed_s, 3),
            "firings": [f.to_dict() for f in self.firings],
            "groups": out_groups,
        }


# --- what the replay counts -----------------------------------------------------------------------------------


def counting(rule: Rule) -> str:
    """What the rule counts: 'stories' (distinct story ids, Rule.count's default) or 'documents' (every copy)."""
    return "documents" if getattr(rule, "count", "documents") == "documents" else "stories"


# The per-minute counts come from warehouse/queries/alerts.py itself (window_counts, story_buckets, watchlist_buckets,
# watchlist_story_buckets): the same sources, scope and sentiment as the evaluator's queries, so a ticker-scoped rule
# counts the sentiment toward the ticker where an entity row exists (migration 0040) exactly as the engine does.
_HAS_STORY_SQL = (
    "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'documents' "
    "AND name = 'story_id'"
)


def _scope_params(rule: Rule) -> dict[str, str | None]:
    return {k: v or "" for k, v in rule.scope.model_dump().items()}


class _Counts:
    """Per-group cumulative minute counts (documents) or sliding-window distinct counts (stories), as arrays
    indexed by minute since ``origin``: column j of ``cum`` is everything before minute j."""

    def __init__(self, origin: int, minutes: int, groups: list[str], metrics: int) -> None:
        self.origin, self.minutes = origin, minutes
        self.groups = groups
        self.index = {g: i for i, g in enumerate(groups)}
        self.cum = np.zeros((metrics, len(groups), minutes + 1), dtype=np.int64)  # documents
        self.sliding: dict[int, np.ndarray] = {}  # stories: window minutes -> (metrics, groups, minutes + 1)

    def col(self, epoch: int) -> int:
        j = (epoch - self.origin) // MINUTE
        if not 0 <= j <= self.minutes:
            raise BacktestError(f"replay asked for {epoch} outside the prefetched range")  # a bug, not bad input
        return j

    def buckets(self, start: int, end: int, bucket_s: int) -> np.ndarray:
        """(metrics, groups, buckets) counts for the buckets [start + i * bucket_s, ... + bucket_s) in [start, end)."""
        n = (end - start) // bucket_s
        self.col(start + n * bucket_s)  # the last end is in range (so is every other one)
        ends = self.col(start) + (np.arange(1, n + 1, dtype=np.int64) * (bucket_s // MINUTE))
        if self.sliding:
            window = bucket_s // MINUTE
            if window not in self.sliding:
                raise BacktestError(f"stories are counted in windows of {list(self.sliding)} min, not {window}")
            return self.sliding[window][:, :, ends]
        starts = ends - bucket_s // MINUTE
        if (starts < 0).any():
            raise BacktestError("replay asked for minutes before the prefetched range")
        return self.cum[:, :, ends] - self.cum[:, :, starts]


class _Result:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.result_rows = rows


class ReplayClient:
    """Answers the evaluator's count queries (warehouse/queries/alerts.py: window_counts, watchlist_hits) from
    prefetched counts. Any other query is a bug in the replay, and says so.

    ``eligible[g, j]`` says whether group g can fire in the window ending at column j at all (its volume reaches the
    rule's minimum, the guard every kind of the evaluator applies first); the other groups are left out of the
    answer, so the evaluator reports no observation for them, which the engine treats as "not firing" too. On a
    week of data most (minute, ticker) pairs are below volume: this is what keeps a 7-day replay fast.
    """

    def __init__(self, counts: _Counts, *, watchlist: bool, eligible: np.ndarray) -> None:
        self.counts = counts
        self.watchlist = watchlist
        self.eligible = eligible

    def is_eligible(self, group: str, end: int) -> bool:
        return bool(self.eligible[self.counts.index[group], self.counts.col(end)])

    def any_eligible(self, end: int) -> bool:
        return bool(self.eligible[:, self.counts.col(end)].any())

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> _Result:
        p = parameters or {}
        start, end = int(p.get("start", 0)), int(p.get("end", 0))
        keep = self.eligible[:, self.counts.col(end)]
        groups = self.counts.groups
        if self.watchlist and "tickers" in p:
            got = self.counts.buckets(start, end, end - start)[0, :, 0]
            return _Result([(groups[i], int(got[i]), []) for i in np.flatnonzero(keep & (got > 0)).tolist()])
        if not self.watchlist and "bucket" in p:
            total, neg, pos, cls = self.counts.buckets(start, end, int(p["bucket"]))
            rows = total * keep[:, None]
            # The evaluator judges whether the baseline has formed from the earliest bucket of *any* group: keep
            # one (non-firing) row of the group holding the earliest bucket, so that judgement stays the engine's.
            seen = np.flatnonzero(total.any(axis=0))
            if len(seen) and not rows[:, seen[0]].any():
                g0 = int(np.flatnonzero(total[:, seen[0]])[0])
                rows[g0, seen[0]] = total[g0, seen[0]]
            gi, bi = np.nonzero(rows)
            return _Result(
                [
                    (groups[g], int(b), int(total[g, b]), int(neg[g, b]), int(pos[g, b]), int(cls[g, b]))
                    for g, b in zip(gi.tolist(), bi.tolist(), strict=True)
                ]
            )
        raise BacktestError(f"the backtest cannot replay this query: {sql.strip()[:80]}")


def _eligible(rule: Rule, counts: _Counts) -> np.ndarray:
    """(groups, columns): the current window's volume reaches what the evaluator requires before anything fires:
    classified >= min_volume (negative_share, sentiment_drop), total >= min_volume (surge, volume_spike), mentions
    >= threshold (watchlist)."""
    w = rule.window_s // MINUTE
    out = np.zeros((len(counts.groups), counts.minutes + 1), dtype=bool)
    if counts.minutes < w:
        return out
    ends = np.arange(w, counts.minutes + 1)
    current = counts.sliding[w][:, :, ends] if counts.sliding else counts.cum[:, :, ends] - counts.cum[:, :, ends - w]
    if rule.kind == "watchlist":
        out[:, w:] = current[0] >= rule.threshold
    elif rule.kind in ("negative_share", "sentiment_drop"):
        out[:, w:] = current[3] >= rule.min_volume
    else:
        out[:, w:] = current[0] >= rule.min_volume
    return out


def _lookback_s(rule: Rule) -> int:
    """How far before a window's end the evaluator reads (its window, plus the baseline windows)."""
    if rule.kind in ("negative_share", "watchlist"):
        return rule.window_s
    return (rule.baseline_s // rule.window_s + 1) * rule.window_s


def _window_counts_documents(client: Any, rule: Rule, start: int, end: int) -> list[q.BucketCounts]:
    """Per-minute document counts through the engine's own query (counting documents even where the shared query
    learns to count stories)."""
    kwargs: dict[str, Any] = {}
    if "count" in inspect.signature(q.window_counts).parameters:
        kwargs["count"] = "documents"
    return q.window_counts(
        client,
        start=start,
        end=end,
        bucket_s=MINUTE,
        group_by=rule.group_by,
        scope=rule.scope.model_dump(),
        use_documents=rule.uses_documents,
        **kwargs,
    )


def _prefetch_documents(client: Any, rule: Rule, origin: int, end: int) -> _Counts:
    minutes = (end - origin) // MINUTE
    if rule.kind == "watchlist":
        rows = q.watchlist_buckets(client, start=origin, end=end, bucket_s=MINUTE, tickers=rule.watch_tickers,
                                   keywords=rule.watch_keywords, scope=_scope_params(rule))  # fmt: skip
        counts = _Counts(origin, minutes, sorted({term for term, _, _ in rows}), 1)
        per_minute = np.zeros_like(counts.cum[:, :, 1:])
        for term, m, n in rows:
            per_minute[0, counts.index[term], m] += n
    else:
        buckets = _window_counts_documents(client, rule, origin, end)
        counts = _Counts(origin, minutes, sorted({b.group for b in buckets}), 4)
        per_minute = np.zeros_like(counts.cum[:, :, 1:])
        for b in buckets:
            per_minute[:, counts.index[b.group], b.bucket] += (b.total, b.negative, b.positive, b.classified)
    np.cumsum(per_minute, axis=2, out=counts.cum[:, :, 1:])
    return counts


def sliding_distinct(
    groups: np.ndarray, minutes: np.ndarray, keys: np.ndarray, n_groups: int, n_minutes: int, window: int
) -> np.ndarray:
    """Distinct keys per group in every window of ``window`` minutes: out[g, e] counts the keys seen in minutes
    [e - window, e). Inputs are one row per (group, minute, key) present; minutes are 0-based indexes."""
    out = np.zeros((n_groups, n_minutes + 2), dtype=np.int64)
    if len(groups):
        df = pd.DataFrame({"g": groups, "k": keys, "m": minutes}).drop_duplicates().sort_values(["g", "k", "m"])
        g, k, m = (df[c].to_numpy() for c in ("g", "k", "m"))
        # A key seen at minute m is in the windows ending at m+1 .. m+window. Sightings of one key are sorted, so
        # each span starts where the previous one stopped: a key counts once per window however often it is seen.
        begin, stop = m + 1, m + window + 1  # stop exclusive
        same = np.concatenate([[False], (g[1:] == g[:-1]) & (k[1:] == k[:-1])])
        begin = np.where(same, np.maximum(begin, np.concatenate([[0], stop[:-1]])), begin)
        np.add.at(out, (g, np.minimum(begin, n_minutes + 1)), 1)
        np.add.at(out, (g, np.minimum(stop, n_minutes + 1)), -1)
    return np.cumsum(out, axis=1)[:, : n_minutes + 1]


def _prefetch_stories(client: Any, rule: Rule, origin: int, end: int) -> _Counts:
    minutes = (end - origin) // MINUTE
    watchlist = rule.kind == "watchlist"
    window_args: dict[str, Any] = {"start": origin, "end": end, "bucket_s": MINUTE, "scope": _scope_params(rule)}
    if watchlist:
        df = q.watchlist_story_buckets(client, tickers=rule.watch_tickers, keywords=rule.watch_keywords, **window_args)
    else:
        if rule.group_by == "lang" and not rule.uses_documents:
            raise BacktestError("the rollup has no language; group by lang through the documents table")
        df = q.story_buckets(client, group_by=rule.group_by, use_documents=rule.uses_documents, **window_args)
    names = sorted({str(g) for g in df["grp"]}) if len(df) else []
    metrics = 1 if watchlist else 4  # a watchlist counts negative stories only
    counts = _Counts(origin, minutes, names, metrics)
    window = rule.window_s // MINUTE
    sliding = np.zeros((metrics, len(names), minutes + 1), dtype=np.int64)
    if len(df):
        g = df["grp"].astype(str).map(counts.index).to_numpy()
        m = df["bucket"].astype("int64").to_numpy()  # minutes since origin
        keys = pd.factorize(df["story_id"])[0]
        flags = [np.ones(len(df), dtype=bool)] + [df[c].astype(bool).to_numpy() for c in ("neg", "pos", "cls")]
        for i, flag in enumerate(flags[:metrics]):
            sliding[i] = sliding_distinct(g[flag], m[flag], keys[flag], len(names), minutes, window)
    counts.sliding[window] = sliding
    return counts


def _has_story_column(client: Any) -> bool:
    return bool(client.query(_HAS_STORY_SQL).result_rows[0][0])


# --- the replay -----------------------------------------------------------------------------------------------


@dataclass
class _Series:
    """One fingerprint's engine state (alerts/engine.py SeriesState), in epoch seconds."""

    state: str = "inactive"
    pending_since: int | None = None
    resolved_at: int | None = None
    open: dict[str, Any] | None = None  # the firing being replayed


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def backtest(
    client: Any,
    rule: Rule,
    *,
    start: datetime,
    end: datetime,
    step_s: int = MINUTE,
    progress: Progress | None = None,
) -> BacktestResult:
    """When ``rule`` would have fired between ``start`` and ``end``: the engine's evaluation at every ``step_s``
    (a whole number of minutes) from the first minute at or after ``start`` to the last at or before ``end``."""
    began = time.perf_counter()
    if step_s < MINUTE or step_s % MINUTE:
        raise BacktestError(f"step {step_s}s: whole minutes only (the windows are whole minutes)")
    first = -(-int(start.timestamp()) // MINUTE) * MINUTE
    last = int(end.timestamp()) // MINUTE * MINUTE
    if last < first:
        raise BacktestError(f"empty range: {start.isoformat()} .. {end.isoformat()} holds no whole minute")
    if last - first > MAX_RANGE_S:
        raise BacktestError(f"range longer than {MAX_RANGE_S // 86_400} days")
    origin = first - _lookback_s(rule)
    how = counting(rule)
    queries = 1
    if how == "stories":
        queries += 1
        if not _has_story_column(client):
            how = "documents"  # no story ids stored yet: the engine counts documents too
    counts = (
        _prefetch_stories(client, rule, origin, last)
        if how == "stories"
        else _prefetch_documents(client, rule, origin, last)
    )
    replay = ReplayClient(counts, watchlist=rule.kind == "watchlist", eligible=_eligible(rule, counts))
    ends = list(range(first, last + 1, step_s))
    groups: dict[str, GroupSeries] = {}
    series: dict[str, _Series] = {}
    active: set[str] = set()  # groups pending or firing
    metric = ""
    every = max(1, len(ends) // 20)
    for n, t in enumerate(ends, 1):
        if not active and not replay.any_eligible(t):
            observations: dict[str, Observation] = {}  # nothing can fire and nothing is open: a quiet minute
        else:
            observations = evaluate(replay, rule, _dt(t))
        for obs in observations.values():
            metric = metric or obs.metric
            if not replay.is_eligible(obs.group, t):
                continue  # a group kept only for the baseline's history: below volume, not part of the series
            g = groups.setdefault(obs.group, GroupSeries(obs.group))
            g.times.append(t)
            g.values.append(float(obs.value))
            g.conditions.append(bool(obs.fires))
        _step(rule, t, observations, series, groups, active)
        if progress is not None and (n % every == 0 or n == len(ends)):
            progress(n, len(ends))
    for group, s in series.items():  # still firing at the end of the range
        if s.state == "firing" and s.open is not None:
            groups[group].firings.append(Firing(group=group, resolved_at=None, **s.open))
    return BacktestResult(
        rule=rule,
        start=_dt(first),
        end=_dt(last),
        step_s=step_s,
        metric=metric or _metric_name(rule),
        threshold=rule.threshold,
        counting=how,
        groups=groups,
        steps=len(ends),
        queries=queries,
        elapsed_s=time.perf_counter() - began,
    )


def _step(
    rule: Rule,
    t: int,
    observations: dict[str, Observation],
    series: dict[str, _Series],
    groups: dict[str, GroupSeries],
    active: set[str],
) -> None:
    """One engine tick for one rule (Engine._step_rule / _clear): pending, cooldown, firing, resolution.
    ``active`` (groups pending or firing) is kept up to date."""
    touched = sorted(set(observations) | active)
    for group in touched:
        obs = observations.get(group)
        s = series.setdefault(group, _Series())
        if obs is None or not obs.fires:
            if s.state == "pending":
                s.state, s.pending_since = "inactive", None
            elif s.state == "firing":
                assert s.open is not None
                groups[group].firings.append(Firing(group=group, resolved_at=_dt(t), **s.open))
                s.state, s.resolved_at, s.open = "inactive", t, None
            continue
        if s.state == "inactive":
            if s.resolved_at is not None and t - s.resolved_at < rule.cooldown_s:
                continue  # cooldown: resolved too recently to fire again
            s.state, s.pending_since = "pending", t
        if s.state == "pending" and s.pending_since is not None and t - s.pending_since >= rule.pending_s:
            s.state, s.pending_since = "firing", None
            s.open = {
                "fired_at": _dt(t),
                "value": float(obs.value),
                "peak": float(obs.value),
                "doc_count": obs.doc_count,
                "message": obs.message,
            }
        elif s.state == "firing" and s.open is not None:
            s.open["peak"] = max(s.open["peak"], float(obs.value))
    for group in touched:  # only these can have changed
        (active.discard if series[group].state == "inactive" else active.add)(group)


def _metric_name(rule: Rule) -> str:
    return {
        "negative_share": "negative_share",
        "watchlist": "negative_mentions",
        "sentiment_drop": "sentiment_index_drop",
        "volume_spike": "volume_z",
    }.get(rule.kind, "negative_share_z" if rule.metric == "share" else "negative_count_z")


def since_range(since_s: int, until: datetime | None = None) -> tuple[datetime, datetime]:
    end = until or datetime.now(UTC)
    return end - timedelta(seconds=since_s), end
