"""The dashboard's login: required when settings carry a password; credentials never live in the repository.

Streamlit's own ``st.login`` speaks OIDC only, so a configured user name and password are checked here, in
constant time, and the signed-in user is kept in the session state of that browser tab's session.
"""

from __future__ import annotations

import hmac

import streamlit as st

from finpulse.settings import Settings

SESSION_KEY = "finpulse_user"


def login_required(settings: Settings) -> bool:
    return bool(settings.dashboard_password)


def check_credentials(settings: Settings, user: str, password: str) -> bool:
    """True when both match the configured ones; compares both in full so timing tells nothing."""
    user_ok = hmac.compare_digest(user.encode(), settings.dashboard_user.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.dashboard_password.encode())
    return bool(settings.dashboard_password) and user_ok and password_ok


def current_user() -> str | None:
    return st.session_state.get(SESSION_KEY)


def render_login(settings: Settings) -> None:
    """The login page: a form; a correct login reruns the app, which then shows every page."""
    st.title("FinPulse")
    st.caption("Sign in to see the financial-sentiment dashboard.")
    with st.form("login"):
        user = st.text_input("User")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if check_credentials(settings, user, password):
            st.session_state[SESSION_KEY] = user
            st.rerun()
        st.error("Wrong user or password.")


def render_logout() -> None:
    user = current_user()
    if user and st.sidebar.button(f"Sign out {user}"):
        del st.session_state[SESSION_KEY]
        st.rerun()
