"""Analyst corrections on the dashboard (issue 14): the "Correct a label" panel under the Live feed and the alert
drill-down, and the "corrected" column those tables show.

A correction goes through warehouse.queries.corrections.record_correction, which validates it (the product's label
sets, the stored document, the entity's row) and rewrites the document's row, so every count and table reads the
corrected label from then on; bad input is shown with the warehouse's reason. Who corrects: the signed-in user when
the dashboard has a login, otherwise the name the analyst enters (required).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import auth, data
from warehouse.queries import corrections as store

log = logging.getLogger(__name__)

FIELD_NAMES = {"topic": "Topic", "sentiment": "Sentiment", "entity_sentiment": "Entity sentiment"}
MARK_COLUMN = "corrected"
_NAME_KEY = "correction_analyst"  # session state: the name an analyst entered (no login), kept across pages
_TTL = 5.0


@st.cache_data(ttl=_TTL, show_spinner=False)
def _corrections(ids: tuple[str, ...]) -> dict[str, list[store.Correction]]:
    return store.corrections_for(data.client(), ids)


@st.cache_data(ttl=_TTL, show_spinner=False)
def _entities(document_id: str, published_ms: int | None) -> list[tuple[str, str, str]]:
    published = None if published_ms is None else pd.Timestamp(published_ms, unit="ms", tz="UTC").to_pydatetime()
    return store.entity_labels(data.client(), document_id, published_at=published)


def describe(correction: store.Correction) -> str:
    """One correction as the table shows it, e.g. 'sentiment positive by dana'."""
    what = correction.entity if correction.field == "entity_sentiment" else correction.field
    return f"{what} {correction.label} by {correction.analyst}"


def mark(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (documents with an ``id`` column) with a ``corrected`` column: what analysts corrected, and who
    ('' for a document nobody corrected). The table still shows when the corrections cannot be read."""
    if df.empty or "id" not in df.columns:
        return df
    try:
        found = _corrections(tuple(str(i) for i in df["id"]))
    except Exception as exc:  # the documents are worth showing without their marks
        log.warning("corrections could not be read: %s", exc)
        st.caption(f"Corrections could not be read ({type(exc).__name__}); labels shown as stored.")
        return df
    marks = ["; ".join(describe(c) for c in found.get(str(i), [])) for i in df["id"]]
    return df.assign(**{MARK_COLUMN: marks})


def _analyst(key: str) -> str:
    user = auth.current_user()
    if user:
        st.caption(f"Corrections are recorded as **{user}**.")
        return user
    return st.text_input("Your name", key=_NAME_KEY, help="Required: every correction is stored with who made it.")


def _title(row: pd.Series) -> str:
    title = str(row.get("title") or "")[:90]
    labels = " / ".join(str(row.get(c)) if pd.notna(row.get(c)) else "-" for c in ("topic", "sentiment"))
    return f"{title} · {labels}"


def _index(options: Sequence[str], value: Any) -> int:
    return list(options).index(value) if isinstance(value, str) and value in options else 0


def _published_ms(value: Any) -> int | None:
    if isinstance(value, datetime | pd.Timestamp) and not pd.isna(value):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        return int(stamp.timestamp() * 1000)
    return None


def render_panel(df: pd.DataFrame, *, key: str) -> None:
    """The correction panel for the documents of ``df``: pick a document, the label to correct and the right one."""
    with st.container(border=True, key=f"{key}_correction"):
        st.markdown("**Correct a label**")
        saved = st.session_state.pop(f"{key}_saved", None)
        if saved:
            st.success(saved)
        if df.empty or "id" not in df.columns:
            st.caption("No document to correct here.")
            return
        rows = {str(r["id"]): r for _, r in df.iterrows()}
        ids = list(rows)
        left, middle, right = st.columns([3, 1, 1])
        doc_id = left.selectbox(
            "Document", ids, format_func=lambda i: _title(rows[i]), key=f"{key}_correct_doc", index=0
        )
        doc_id = doc_id if doc_id in rows else ids[0]
        row = rows[doc_id]
        field = middle.radio("Correct", list(FIELD_NAMES), format_func=FIELD_NAMES.get, key=f"{key}_correct_field")
        entity = ""
        current: Any = row.get(field)
        if field == "entity_sentiment":
            try:
                entities = _entities(doc_id, _published_ms(row.get("published_at")))
            except Exception as exc:
                st.error(f"Entity-level sentiment could not be read: {exc}")
                return
            if not entities:
                st.info("This document has no entity-level sentiment (no entity model scored it).")
                return
            sentiment_of = {e: (s, src) for e, s, src in entities}
            entity = right.selectbox(
                "Entity",
                list(sentiment_of),
                format_func=lambda e: (
                    f"{e} ({sentiment_of[e][0]}{', corrected' if sentiment_of[e][1] == 'analyst' else ''})"
                ),
                key=f"{key}_correct_entity",
            )
            current = sentiment_of.get(entity, ("", ""))[0]
        labels = store.labels_for(field)
        # Keyed by document (and entity): each starts at its own current label.
        label_box = st.columns([3, 2])
        label = label_box[0].selectbox(
            "Correct label", labels, index=_index(labels, current), key=f"{key}_correct_label_{field}_{doc_id}_{entity}"
        )
        with label_box[1]:
            analyst = _analyst(key)
        if st.button("Save correction", key=f"{key}_correct_save", type="primary"):
            try:
                done = store.record_correction(
                    data.client(), document_id=doc_id, field=field, label=label, analyst=analyst, entity=entity
                )
            except store.CorrectionError as exc:
                st.error(f"Not saved: {exc}")
                return
            except Exception as exc:  # ClickHouse unreachable or refusing: say so, keep the form as it is
                log.exception("correction not saved")
                st.error(f"Not saved: the warehouse did not take it ({type(exc).__name__}: {str(exc)[:200]})")
                return
            was = f" (was {done.previous_label})" if done.previous_label else ""
            st.session_state[f"{key}_saved"] = (
                f"Saved: {FIELD_NAMES[field].lower()}{' of ' + entity if entity else ''} is {done.label}{was}, "
                f"corrected by {done.analyst}."
            )
            st.cache_data.clear()  # every table and count reads the corrected label from now on
            st.rerun()
