-- Classified documents (finpulse/contracts.py ClassifiedDocument), one row per delivery.
-- ReplacingMergeTree keyed by id: a redelivered document (at-least-once Kafka) collapses into one row when parts
-- merge, the latest classified_at winning. Until then BOTH rows exist, so every count must be dedup-safe:
--   * read `documents_latest` (this table with FINAL), or `FROM documents FINAL`, or count uniqExact(id).
-- published_at never changes for an id (it comes from the source), so both copies land in the same monthly
-- partition, which is where ReplacingMergeTree deduplicates.
CREATE TABLE IF NOT EXISTS ${database}.documents
(
    id String,
    source LowCardinality(String),
    kind LowCardinality(String),
    lang LowCardinality(String),
    title String,
    body String,
    url Nullable(String),
    author Nullable(String),
    published_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    tickers Array(LowCardinality(String)),
    entities Array(String),
    meta String COMMENT 'JSON object as text',
    topic LowCardinality(Nullable(String)),
    topic_score Nullable(Float32),
    sentiment LowCardinality(Nullable(String)),
    sentiment_score Nullable(Float32) COMMENT 'P(positive) - P(negative)',
    topic_probs Map(LowCardinality(String), Float32),
    sentiment_probs Map(LowCardinality(String), Float32),
    model_version LowCardinality(String),
    classified_at DateTime64(3, 'UTC'),
    schema_version UInt8 DEFAULT 1
)
ENGINE = ReplacingMergeTree(classified_at)
PARTITION BY toYYYYMM(published_at)
ORDER BY id
TTL toDateTime(published_at) + INTERVAL ${documents_ttl_days} DAY;

-- The dedup-safe way to read documents: one row per id, whatever merges have or have not run.
CREATE VIEW IF NOT EXISTS ${database}.documents_latest AS
SELECT * FROM ${database}.documents FINAL;
