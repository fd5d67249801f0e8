"""The Streamlit entry file: page config, the login gate, and st.navigation over the pages (which only render).

Run with `finpulse dashboard` (or `finpulse up`); settings come from FINPULSE_* like every other service.
"""

from __future__ import annotations

import streamlit as st

from dashboard import auth, data
from dashboard.views import alerts, feed, health, overview, sql_explorer, topics

st.set_page_config(page_title="FinPulse", page_icon=":material/monitoring:", layout="wide")
settings = data.settings()


def login() -> None:
    auth.render_login(settings)


# Every page's address, so that a link into a page (a webhook's /alerts?alert=<id>) survives signing in.
PAGE_PATHS = ("overview", "topics", "feed", "alerts", "sql", "health")

if auth.login_required(settings) and not auth.current_user():
    # Signed out, each address shows the sign-in form (not "page not found"); the rerun after signing in keeps the
    # address and its query, so the page the link named opens.
    login_pages = [st.Page(login, title="Sign in", url_path=path) for path in ("login", *PAGE_PATHS)]
    st.navigation(login_pages, position="hidden").run()
else:
    pages = {
        "Monitor": [
            st.Page(overview.render, title="Overview", icon=":material/monitoring:", url_path="overview", default=True),
            st.Page(topics.render, title="Topics and tickers", icon=":material/grid_on:", url_path="topics"),
            st.Page(feed.render, title="Live feed", icon=":material/rss_feed:", url_path="feed"),
        ],
        "Act": [st.Page(alerts.render, title="Alerts", icon=":material/notifications:", url_path="alerts")],
        "Investigate": [
            st.Page(sql_explorer.render, title="SQL explorer", icon=":material/terminal:", url_path="sql"),
            st.Page(health.render, title="Pipeline health", icon=":material/monitor_heart:", url_path="health"),
        ],
    }
    page = st.navigation(pages)
    st.sidebar.caption(f"FinPulse · live panels refresh every {settings.dashboard_refresh_s:g} s")
    auth.render_logout()
    page.run()
