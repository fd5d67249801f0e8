"""The documents table as code writes it, derived from the contract (finpulse/contracts.py ClassifiedDocument).

The columns the stream writes are the contract's fields, in the contract's order; a row is a document's values with
the few conversions in ``_CONVERSIONS``. The columns no stream row carries are declared once, in ``WRITTEN_ELSEWHERE``.
So a new documents column is a migration plus one change here (a contract field, or an entry in WRITTEN_ELSEWHERE);
tests/integration/warehouse/test_schema.py applies every migration to a real engine and checks that the table has
exactly ``TABLE_COLUMNS``. The SQL itself lives in warehouse/migrations/.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from finpulse.contracts import ClassifiedDocument

DOCUMENT_COLUMNS: tuple[str, ...] = tuple(ClassifiedDocument.model_fields)
"""The documents columns a stream row fills: every field of the contract (the stream inserts naming them)."""

WRITTEN_ELSEWHERE: dict[str, str] = {
    "relabeled": "1 = written by finpulse relabel (stream/relabel.py; migration 0020)",
    "label_source": "model | analyst, set by an analyst's correction (warehouse/queries/corrections.py; 0041)",
    "corrected_fields": "the fields an analyst corrected (corrections; 0041)",
    "corrected_by": "the analyst of the latest correction (corrections; 0041)",
}
"""The documents columns that are no contract field, with who writes them: a stream row leaves them to their
DEFAULT."""

TABLE_COLUMNS: tuple[str, ...] = DOCUMENT_COLUMNS + tuple(WRITTEN_ELSEWHERE)
"""Every column of the documents table (and of its documents_latest view), as the migrations leave it."""

# The columns whose value is not the field's value as is; every other column is read straight off the document.
_CONVERSIONS: dict[str, Callable[[ClassifiedDocument], Any]] = {
    "meta": lambda doc: json.dumps(doc.meta, ensure_ascii=False, default=str),  # a String column holding JSON
    "story_id": lambda doc: doc.story_id or doc.id,  # no story (a version-1 producer): its own story
    "novelty": lambda doc: 1.0 if doc.novelty is None else doc.novelty,
}

_unknown = sorted(set(_CONVERSIONS) - set(DOCUMENT_COLUMNS))
if _unknown:  # a contract field was renamed or removed: its conversion would silently stop applying
    raise RuntimeError(f"warehouse.schema converts {_unknown}, which are no field of ClassifiedDocument")
_overlap = sorted(set(WRITTEN_ELSEWHERE) & set(DOCUMENT_COLUMNS))
if _overlap:
    raise RuntimeError(f"warehouse.schema declares {_overlap} both as contract fields and as written elsewhere")

_GETTERS: tuple[Callable[[ClassifiedDocument], Any], ...] = tuple(
    _CONVERSIONS.get(column, attrgetter(column)) for column in DOCUMENT_COLUMNS
)


def document_row(doc: ClassifiedDocument) -> list[Any]:
    """The documents row of a classified document, in DOCUMENT_COLUMNS order (insert it naming those columns).
    Raises what a conversion raises (ValueError for a ``meta`` that json.dumps refuses, e.g. a circular one)."""
    return [get(doc) for get in _GETTERS]
