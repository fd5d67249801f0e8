"""Entity-level sentiment in queries (issue 14, migration 0040): rows of the rollup or of documents_latest, one per
(document, ticker), whose ``sentiment`` is the sentiment toward that ticker where the entity model scored it and the
document's own label otherwise; ``basis`` says which ('entity' | 'document'). Ticker-scoped alert counts, the
ticker ranking and the drill-down read them.

Constant SQL: the only variable parts are choices among these fragments; values are bound parameters.
"""

from __future__ import annotations

from string import Template

# The latest entity rows of the window (one per (document, entity) under FINAL; the key starts with the minute, so
# only the window's minutes are read).
ENTITY_ROWS = """
    SELECT document_id, entity, sentiment AS entity_sentiment, sentiment_score AS entity_score, relevance,
           1 AS found
    FROM document_entities FINAL
    WHERE published_at >= toDateTime64({start:UInt32}, 3, 'UTC')
      AND published_at < toDateTime64({end:UInt32}, 3, 'UTC')"""

# $inner: the rows to count, one per (document, ticker), with their document-level sentiment as doc_sentiment and the
# ticker as ticker; $columns: the columns passed through. Their sentiment becomes the sentiment toward that ticker
# where the entity model scored it (a LEFT JOIN: without an entity row, found = 0 and the document's label stays).
_WITH_ENTITY_SENTIMENT = Template("""(
    SELECT $columns,
           if(e.found = 1, e.entity_sentiment, d.doc_sentiment) AS sentiment,
           if(e.found = 1, 'entity', 'document') AS basis,
           e.found AS has_entity, e.entity_score AS entity_score, e.relevance AS entity_relevance
    FROM ($inner) AS d
    LEFT JOIN ($entity_rows) AS e ON e.document_id = d.id AND e.entity = d.ticker
)""")

_ROLLUP_ENTITY_INNER = Template("""
        SELECT minute, id, story_id, topic, source, tickers, sentiment AS doc_sentiment, $ticker AS ticker
        FROM documents_minutely_latest FINAL $array_join
        WHERE minute >= toDateTime({start:UInt32}, 'UTC') AND minute < toDateTime({end:UInt32}, 'UTC')""")
_ROLLUP_ENTITY_COLUMNS = ("minute", "id", "story_id", "topic", "source", "tickers", "ticker")

_DOCS_ENTITY_INNER = Template("""
        SELECT id, story_id, topic, source, lang, tickers, published_at, title, body, url, sentiment_score,
               sentiment AS doc_sentiment, $ticker AS ticker
        FROM documents_latest $array_join
        WHERE published_at >= toDateTime64({start:UInt32}, 3, 'UTC')
          AND published_at < toDateTime64({end:UInt32}, 3, 'UTC')""")
_DOCS_ENTITY_COLUMNS = ("id", "story_id", "topic", "source", "lang", "tickers", "published_at", "title", "body", "url",
                        "sentiment_score", "ticker")  # fmt: skip


def entity_source(rollup: bool, by_ticker: bool, ticker_param: str = "ticker") -> str:
    """A FROM source like the rollup's / documents_latest's rows, with ``sentiment`` toward the ticker: each ticker
    of a document when ``by_ticker`` (ARRAY JOIN), else the one ticker bound as ``{<ticker_param>:String}``."""
    inner, columns = (
        (_ROLLUP_ENTITY_INNER, _ROLLUP_ENTITY_COLUMNS) if rollup else (_DOCS_ENTITY_INNER, _DOCS_ENTITY_COLUMNS)
    )
    return _WITH_ENTITY_SENTIMENT.substitute(
        columns=", ".join(f"d.{c} AS {c}" for c in columns),
        inner=inner.substitute(
            ticker="ticker" if by_ticker else f"{{{ticker_param}:String}}",
            array_join="ARRAY JOIN tickers AS ticker" if by_ticker else "",
        ),
        entity_rows=ENTITY_ROWS,
    )
