"""SQL explorer: ad-hoc SQL as the read-only analyst user, with a row limit, a timeout, CSV download and saved
queries. What this user may run is decided by the database, not by this page."""

from __future__ import annotations

import streamlit as st

from dashboard import data, explorer, saved_queries
from finpulse.settings import Settings

SQL_KEY = "explorer_sql"
RESULT_KEY = "explorer_result"


def render() -> None:
    st.title("SQL explorer")
    settings = data.settings()
    st.caption(
        f"Runs as the read-only user `{settings.clickhouse_analyst_user}` on database "
        f"`{settings.clickhouse_database}`: tables documents, documents_latest (one row per id), "
        f"documents_minutely_counts, alerts, alert_deliveries. Timeout {settings.dashboard_sql_timeout_s:g} s."
    )
    saved = saved_queries.load(settings)
    choices = {**{f"example: {k}": v for k, v in saved_queries.EXAMPLES.items()}, **saved}
    if SQL_KEY not in st.session_state:
        st.session_state[SQL_KEY] = next(iter(saved_queries.EXAMPLES.values()))

    def load_choice() -> None:
        picked = st.session_state.get("explorer_pick")
        if picked in choices:
            st.session_state[SQL_KEY] = choices[picked]

    st.selectbox(
        "Saved queries",
        list(choices),
        index=None,
        placeholder="Load a saved query...",
        key="explorer_pick",
        on_change=load_choice,
    )
    st.text_area("SQL", key=SQL_KEY, height=180)
    left, middle, _ = st.columns([1, 1, 3])
    limit = left.number_input(
        "Row limit",
        min_value=1,
        max_value=settings.dashboard_sql_row_limit,
        value=min(1000, settings.dashboard_sql_row_limit),
    )
    middle.write("")
    if middle.button("Run", type="primary"):
        st.session_state[RESULT_KEY] = data.run_sql(st.session_state[SQL_KEY], int(limit))
    _result(st.session_state.get(RESULT_KEY), int(limit))
    _save_panel(settings, saved)


def _result(result: explorer.ExplorerResult | None, limit: int) -> None:
    if result is None:
        st.info("Write a query (or load one) and press Run.")
        return
    if result.error:
        st.error(result.error, icon=":material/block:" if result.refused else ":material/error:")
        return
    note = f"{len(result.frame):,} rows in {result.elapsed_s:.2f} s"
    if result.truncated:
        note += f" - stopped at the row limit ({limit:,}); add a LIMIT or aggregate for the rest"
    st.caption(note)
    st.dataframe(result.frame, hide_index=True, width="stretch")
    st.download_button("Download CSV", explorer.to_csv(result.frame), file_name="finpulse-query.csv", mime="text/csv")


def _save_panel(settings: Settings, saved: dict[str, str]) -> None:
    with st.expander("Save or delete a query"):
        name = st.text_input("Name", key="explorer_name")
        left, right = st.columns(2)
        if left.button("Save current query"):
            try:
                saved_queries.save(settings, name, st.session_state[SQL_KEY])
                st.success(f"Saved {name.strip()!r}.")
            except ValueError as exc:
                st.error(str(exc))
        if saved:
            victim = right.selectbox("Saved", list(saved), key="explorer_delete_pick")
            if right.button("Delete"):
                saved_queries.delete(settings, victim)
                st.rerun()
