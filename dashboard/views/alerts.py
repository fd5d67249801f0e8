"""Alerts: firing and recent alerts with acknowledge and silence, why an alert fired (``?alert=<id>``, the link
every webhook carries), the rule list with an editor that previews a rule on history before it is saved, a
test-send per webhook target, and the delivery log. Reads and writes go through the alert part's store
(alerts.store); the preview is alerts.backtest, the same replay as `finpulse alerts backtest`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from pydantic import ValidationError

from alerts import store
from alerts.backtest import BacktestResult, backtest
from alerts.rules import RULE_KINDS, Rule
from alerts.targets import WebhookTarget
from dashboard import auth, data
from dashboard.views import alert_detail

SILENCE_FOR = {1: "1 hour", 4: "4 hours", 24: "24 hours", 168: "7 days"}
NEW_RULE = "+ New rule"
NEW_TARGET = "+ New target"
PREVIEW_DAYS = {1: "1 day", 3: "3 days", 7: "7 days", 14: "14 days"}
PREVIEW_GROUPS = 8  # lines drawn: the groups that fired, then the highest
COUNTS = ("stories", "documents")
_DRAFT = "rule_draft"  # session state: (rule picked in the editor, the edited fields last previewed or saved)


def render() -> None:
    st.title("Alerts")
    opened = st.query_params.get("alert")
    if opened:
        alert_detail.render(str(opened))
    st.fragment(_live, run_every=data.refresh_s())()
    rules_tab, targets_tab, log_tab = st.tabs(["Rules", "Webhook targets", "Delivery log"])
    with rules_tab:
        _rules()
    with targets_tab:
        _targets()
    with log_tab:
        st.fragment(_delivery_log, run_every=data.refresh_s())()


def _who() -> str:
    return auth.current_user() or "dashboard"


def _live() -> None:
    alerts = data.list_alerts(None, 200)
    active = alerts[alerts["state"].isin(["firing", "acknowledged"])] if not alerts.empty else alerts
    cols = st.columns(3)
    cols[0].metric("Firing", int((alerts["state"] == "firing").sum()) if not alerts.empty else 0)
    cols[1].metric("Acknowledged", int((alerts["state"] == "acknowledged").sum()) if not alerts.empty else 0)
    cols[2].metric("Resolved (recent)", int((alerts["state"] == "resolved").sum()) if not alerts.empty else 0)
    st.subheader("Firing now")
    if active.empty:
        st.success("No alert is firing. Rules are evaluated every few seconds by the alert engine.")
    else:
        _alert_table(active)
        _actions(active)
    st.subheader("Recent alerts")
    if alerts.empty:
        st.info("No alerts yet. Add a rule below (or in the rules file) and the alert engine will raise them here.")
    else:
        _alert_table(alerts)
        _why_picker(alerts)


def _why_picker(alerts: pd.DataFrame) -> None:
    """Open an alert's detail: the same view as a webhook's link (``?alert=<id>``)."""
    labels = {
        row.id: f"{row.rule_name} · {row.group_value or 'all'} · {row.state} (since {row.started_at:%m-%d %H:%M})"
        for row in alerts.itertuples()
    }
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    picked = left.selectbox("Why did it fire?", list(labels), format_func=labels.get, key="why_pick")
    if right.button("Show why", key="why_show") and picked:
        st.query_params["alert"] = picked
        st.rerun(scope="app")


ALERT_COLUMNS = {
    "started_at": st.column_config.DatetimeColumn("since (UTC)", format="MM-DD HH:mm"),
    "severity": st.column_config.TextColumn("severity"),
    "state": st.column_config.TextColumn("state", width="small"),
    "rule_name": st.column_config.TextColumn("rule"),
    "group_value": st.column_config.TextColumn("group"),
    "value": st.column_config.NumberColumn("value", format="%.3g"),
    "threshold": st.column_config.NumberColumn("threshold", format="%.3g"),
    "doc_count": st.column_config.NumberColumn("docs"),
    "message": st.column_config.TextColumn("message", width="large"),
    "acknowledged_by": st.column_config.TextColumn("acknowledged by"),
}


def _alert_table(df: pd.DataFrame) -> None:
    st.dataframe(df, column_order=list(ALERT_COLUMNS), column_config=ALERT_COLUMNS, hide_index=True, width="stretch")


def _actions(active: pd.DataFrame) -> None:
    labels = {
        row.id: f"{row.rule_name} · {row.group_value or 'all'} · {row.state} (since {row.started_at:%m-%d %H:%M})"
        for row in active.itertuples()
    }
    with st.container(border=True):
        alert_id = st.selectbox("Alert", list(labels), format_func=labels.get, key="alert_pick")
        row = active[active["id"] == alert_id].iloc[0]
        hours = st.selectbox(
            "Silence notifications for", list(SILENCE_FOR), format_func=SILENCE_FOR.get, key="silence_for"
        )
        until = datetime.now(UTC) + timedelta(hours=hours)
        left, middle, right = st.columns(3)
        if left.button("Acknowledge", disabled=row["state"] == "acknowledged"):
            _write(lambda: store.acknowledge(data.settings(), alert_id, _who()), f"Acknowledged as {_who()}.")
        if middle.button("Silence this series"):
            _write(
                lambda: store.silence(data.settings(), str(row["fingerprint"]), until, _who()),
                f"Notifications for this series are silenced until {until:%Y-%m-%d %H:%M} UTC.",
            )
        if right.button(f"Silence rule {row['rule_id']}"):
            _write(
                lambda: store.silence(data.settings(), str(row["rule_id"]), until, _who()),
                f"Rule {row['rule_id']} is silenced until {until:%Y-%m-%d %H:%M} UTC.",
            )
        silences = data.list_silences()
        if not silences.empty:
            st.caption(
                "Silences in force: "
                + ", ".join(f"{s.target} until {s.until:%m-%d %H:%M}" for s in silences.itertuples())
            )


def _write(action, done: str) -> None:
    try:
        action()
    except (LookupError, ValueError) as exc:
        st.error(str(exc))
        return
    data.alerts_changed()
    st.toast(done)


# --- rules ------------------------------------------------------------------------------------------------------


def _rules() -> None:
    rules = data.list_rules()
    if rules:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "id": r.id,
                        "name": r.name,
                        "kind": r.kind,
                        "enabled": r.enabled,
                        "severity": r.severity,
                        "scope": r.scope.describe(),
                        "group by": r.group_by,
                        "window (min)": r.window_s // 60,
                        "threshold": r.threshold,
                        "origin": r.origin,
                    }
                    for r in rules
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.info("No rules yet: create one with the editor below.")
    by_id = {r.id: r for r in rules}
    picked = st.selectbox("Edit rule", [NEW_RULE, *by_id], key="rule_pick")
    rule = by_id.get(picked)
    targets = [t.name for t in data.list_targets()]
    with st.form(f"rule_form_{picked}"):
        left, right = st.columns(2)
        name = left.text_input("Name", rule.name if rule else "")
        kind = right.selectbox("Kind", RULE_KINDS, index=RULE_KINDS.index(rule.kind) if rule else 0)
        severity = left.selectbox(
            "Severity",
            ["info", "warning", "critical"],
            index=["info", "warning", "critical"].index(rule.severity) if rule else 1,
        )
        group_by = right.selectbox(
            "One alert per",
            ["none", "topic", "ticker", "source", "lang"],
            index=["none", "topic", "ticker", "source", "lang"].index(rule.group_by) if rule else 0,
        )
        scope = rule.scope if rule else None
        s1, s2, s3, s4 = st.columns(4)
        topic = s1.text_input("Scope: topic", (scope.topic or "") if scope else "")
        ticker = s2.text_input("Scope: ticker", (scope.ticker or "") if scope else "")
        source = s3.text_input("Scope: source", (scope.source or "") if scope else "")
        lang = s4.text_input("Scope: language", (scope.lang or "") if scope else "")
        n1, n2, n3, n4, n5 = st.columns(5)
        window_min = n1.number_input("Window (min)", 1, 7 * 1440, (rule.window_s // 60) if rule else 15)
        baseline_h = n2.number_input("Baseline (h)", 0.05, 90 * 24.0, (rule.baseline_s / 3600) if rule else 6.0)
        threshold = n3.number_input("Threshold", value=float(rule.threshold) if rule else 0.5, format="%.3f")
        min_volume = n4.number_input("Min. volume", 0, 1_000_000, rule.min_volume if rule else 10)
        current_count = getattr(rule, "count", COUNTS[0]) if rule else COUNTS[0]
        count = n5.selectbox(
            "Count",
            COUNTS,
            index=COUNTS.index(current_count) if current_count in COUNTS else 0,
            help="stories: copies of one story count once (the default); documents: every copy counts",
        )
        c1, c2 = st.columns(2)
        cooldown_min = c1.number_input(
            "Cooldown (min)", 0, 7 * 1440, (rule.cooldown_s // 60) if rule else 30, help="quiet after resolving"
        )
        pending_min = c2.number_input(
            "Pending (min)", 0, 1440, (rule.pending_s // 60) if rule else 0, help="the condition must hold this long"
        )
        w1, w2 = st.columns(2)
        watch_tickers = w1.text_input("Watch tickers (comma-separated)", ", ".join(rule.watch_tickers) if rule else "")
        watch_keywords = w2.text_input(
            "Watch keywords (comma-separated)", ", ".join(rule.watch_keywords) if rule else ""
        )
        chosen_targets = st.multiselect(
            "Send to (none = every target)",
            targets,
            default=[t for t in (rule.targets if rule else []) if t in targets],
        )
        enabled = st.checkbox("Enabled", rule.enabled if rule else True)
        description = st.text_area("Description", rule.description if rule else "", height=68)
        b1, b2, _ = st.columns([1, 1, 3])
        previewed = b1.form_submit_button("Preview on history")
        submitted = b2.form_submit_button("Save rule", type="primary")
    fields: dict[str, Any] = {
        "id": rule.id if rule else "",
        "name": name,
        "kind": kind,
        "enabled": enabled,
        "severity": severity,
        "description": description,
        "scope": {"topic": topic, "ticker": ticker, "source": source, "lang": lang},
        "group_by": group_by,
        "window_s": int(window_min) * 60,
        "baseline_s": round(baseline_h * 3600),
        "threshold": threshold,
        "min_volume": int(min_volume),
        "cooldown_s": int(cooldown_min) * 60,
        "pending_s": int(pending_min) * 60,
        "watch_tickers": _split(watch_tickers),
        "watch_keywords": _split(watch_keywords),
        "targets": chosen_targets,
    }
    if "count" in Rule.model_fields:
        fields["count"] = count
    if rule:
        fields |= {"metric": rule.metric}
    if previewed or submitted:
        st.session_state[_DRAFT] = (picked, fields)
    if submitted:
        try:
            saved = store.save_rule(data.settings(), Rule.model_validate(fields), client=data.client())
        except ValidationError as exc:
            st.error("The rule is not valid: " + "; ".join(_messages(exc)))
        else:
            data.alerts_changed()
            st.success(f"Saved rule {saved.id}.")
    if rule and st.button(f"Delete rule {rule.id}"):
        store.delete_rule(data.settings(), rule.id, client=data.client())
        data.alerts_changed()
        st.rerun()
    _preview(picked, rule)


# --- preview: the rule as edited, replayed over history (alerts.backtest) ------------------------------------------


def _draft(picked: str, rule: Rule | None) -> Rule | None:
    """The rule the preview shows: the fields last previewed (or saved) for this pick, else the stored rule."""
    drafted = st.session_state.get(_DRAFT)
    if drafted and drafted[0] == picked:
        try:
            return Rule.model_validate(drafted[1])
        except ValidationError as exc:
            st.error("The rule is not valid yet, so it cannot be previewed: " + "; ".join(_messages(exc)))
            return None
    return rule


@st.cache_data(ttl=60, show_spinner=False)
def _backtest(rule_json: str, days: int, end_minute: int) -> BacktestResult:
    end = datetime.fromtimestamp(end_minute, UTC)
    return backtest(data.client(), Rule.model_validate_json(rule_json), start=end - timedelta(days=days), end=end)


def preview_groups(result: BacktestResult, limit: int = PREVIEW_GROUPS) -> list[str]:
    """The groups worth a line: those that fired (most firings first), then the highest peaks."""
    ranked = sorted(
        (g for g in result.groups.values() if g.values),
        key=lambda g: (-len(g.firings), -max(g.values), g.group),
    )
    return [g.group for g in ranked[:limit]]


def preview_chart(result: BacktestResult, groups: list[str]) -> alt.LayerChart:
    """The metric per group against the threshold (dashed), the alerts that would have fired as red points."""
    df = result.frame()
    df = df[df["group"].isin(groups)].assign(group=lambda d: d["group"].replace("", "(all)"))
    # A line joins consecutive evaluated minutes only: across a gap (below volume) nothing was measured.
    gap = df.groupby("group")["time"].diff() > pd.Timedelta(seconds=result.step_s)
    df = df.assign(segment=gap.astype(int).groupby(df["group"]).cumsum())
    base = alt.Chart(df)
    x = alt.X("time:T", title=None, axis=alt.Axis(format="%m-%d %H:%M", labelOverlap=True))
    y = alt.Y("value:Q", title=result.metric)
    color = alt.Color("group:N", title=result.rule.group_by if result.rule.group_by != "none" else "")
    lines = base.mark_line(strokeWidth=1.2, opacity=0.8, point=alt.OverlayMarkDef(size=10)).encode(
        x=x, y=y, color=color, detail="segment:N"
    )
    fired = (
        base.transform_filter(alt.datum.fired)
        .mark_point(shape="triangle-up", size=120, filled=True, color="#d62728")
        .encode(
            x=x,
            y=y,
            tooltip=[alt.Tooltip("time:T", format="%Y-%m-%d %H:%M"), "group:N", alt.Tooltip("value:Q", format=".3g")],
        )
    )
    threshold = (
        alt.Chart(pd.DataFrame({"threshold": [result.threshold]}))
        .mark_rule(strokeDash=[6, 4], color="#555")
        .encode(y="threshold:Q")
    )
    return alt.layer(lines, threshold, fired).properties(height=300, title="Metric against the threshold")


def _preview(picked: str, rule: Rule | None) -> None:
    st.subheader("Preview on history")
    draft = _draft(picked, rule)
    if draft is None:
        if rule is None:
            st.caption("Fill in the rule and press Preview on history: the chart shows when it would have fired.")
        return
    days = st.selectbox(
        "Replay the last", list(PREVIEW_DAYS), index=0, format_func=PREVIEW_DAYS.get, key="preview_days"
    )
    end_minute = int(datetime.now(UTC).timestamp()) // 60 * 60
    with st.spinner(f"Replaying {draft.name} over {PREVIEW_DAYS[days]}..."):
        try:
            result = _backtest(draft.model_dump_json(), days, end_minute)
        except ValueError as exc:
            st.error(f"The preview cannot run: {exc}")
            return
    cols = st.columns(4)
    cols[0].metric("Would have fired", f"{result.firing_count} times")
    cols[1].metric("Groups that fired", sum(1 for g in result.groups.values() if g.firings))
    cols[2].metric("Groups at volume", len(result.groups))
    cols[3].metric("Threshold", f"{result.threshold:g}")
    st.caption(
        f"{draft.kind} rule {draft.name!r} as edited (not necessarily saved), counting {result.counting}, "
        f"evaluated every minute from {result.start:%m-%d %H:%M} to {result.end:%m-%d %H:%M} UTC with its pending "
        f"({draft.pending_s // 60} min) and cooldown ({draft.cooldown_s // 60} min), in {result.elapsed_s:.1f} s. "
        "Minutes below the rule's minimum volume are not drawn: nothing fires there."
    )
    groups = preview_groups(result)
    if not groups:
        st.info("No window in this range reached the rule's minimum volume: the rule would never have fired.")
        return
    st.altair_chart(preview_chart(result, groups), width="stretch")
    firings = result.firings
    if firings:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "fired (UTC)": f.fired_at,
                        "resolved (UTC)": f.resolved_at,
                        "group": f.group or "(all)",
                        "value": f.value,
                        "peak": f.peak,
                        "volume": f.doc_count,
                        "message": f.message,
                    }
                    for f in firings
                ]
            ),
            hide_index=True,
            width="stretch",
            key="preview_firings",
        )


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _messages(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append(f"{where}: {message}" if where else message)
    return out


# --- targets and deliveries ---------------------------------------------------------------------------------------


def _targets() -> None:
    targets = data.list_targets()
    if not targets:
        st.info("No webhook targets yet: add one below, then press its Test send.")
    for target in targets:
        with st.container(border=True):
            left, right = st.columns([4, 1])
            state = "enabled" if target.enabled else "disabled"
            left.markdown(f"**{target.name}** · {target.format} · {state}  \n`{target.url}`")
            if right.button("Test send", key=f"test_{target.name}"):
                with st.spinner(f"Sending a test alert to {target.name}..."):
                    result = store.test_send(data.settings(), target.name, client=data.client())
                data.alerts_changed()
                detail = f"HTTP {result.http_status}" if result.http_status else "no response"
                if result.status == "delivered":
                    left.success(f"Delivered to {target.name}: {detail} in {result.latency_ms} ms.")
                else:
                    left.error(f"Test send to {target.name} failed ({detail}): {result.error}")
    with st.expander("Add or edit a target"):
        by_name = {t.name: t for t in targets}
        picked = st.selectbox("Target", [NEW_TARGET, *by_name], key="target_pick")
        target = by_name.get(picked)
        with st.form(f"target_form_{picked}"):
            name = st.text_input("Name", target.name if target else "")
            url = st.text_input("URL", target.url if target else "https://")
            fmt = st.selectbox(
                "Format",
                ["generic", "slack", "alertmanager"],
                index=["generic", "slack", "alertmanager"].index(target.format) if target else 0,
            )
            secret = st.text_input("Signing secret (blank keeps the stored one)", type="password")
            enabled = st.checkbox("Enabled", target.enabled if target else True)
            submitted = st.form_submit_button("Save target")
        if submitted:
            try:
                model = WebhookTarget(name=name, url=url, format=fmt, secret=secret or None, enabled=enabled)
                store.save_target(data.settings(), model, client=data.client())
            except ValidationError as exc:
                st.error("The target is not valid: " + "; ".join(_messages(exc)))
            else:
                data.alerts_changed()
                st.success(f"Saved target {name}.")


def _delivery_log() -> None:
    log = data.list_deliveries(200)
    if log.empty:
        st.info("No deliveries yet. Alerts are delivered to webhook targets when they fire; Test send adds one here.")
        return
    st.dataframe(log, hide_index=True, width="stretch")
    counts = log["status"].value_counts()
    st.caption(" · ".join(f"{status}: {n}" for status, n in counts.items()))
