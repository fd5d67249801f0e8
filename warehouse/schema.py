"""The ClickHouse tables' shapes that code writes to (the SQL itself lives in warehouse/migrations/)."""

# Column order of warehouse/migrations/0001_documents.sql, then the columns later migrations added (schema_version has
# a default but is written anyway; story_id and novelty come from 0030_stories.sql).
DOCUMENT_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "kind",
    "lang",
    "title",
    "body",
    "url",
    "author",
    "published_at",
    "ingested_at",
    "tickers",
    "entities",
    "meta",
    "topic",
    "topic_score",
    "sentiment",
    "sentiment_score",
    "topic_probs",
    "sentiment_probs",
    "model_version",
    "classified_at",
    "schema_version",
    "story_id",
    "novelty",
)
