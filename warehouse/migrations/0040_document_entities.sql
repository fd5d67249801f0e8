-- Entity-level sentiment (issue 14): per (document, entity) the sentiment toward the entity and its relevance (is the
-- document about it, or a passing mention?), written by the stream (stream/entities.py) beside each document's row.
-- `entity` is the ticker ingest found (the key ticker rules, the ticker ranking and the drill-down join on); rank 0 is
-- the entity the model found most relevant. Like documents, a ReplacingMergeTree(classified_at): a redelivered batch
-- writes the same rows again and a newer row per (document_id, entity) - a relabel, or an analyst's correction
-- (label_source = 'analyst', corrections helper) - wins; read it with FINAL (or the _latest view).
-- ORDER BY starts with the minute, so an alert's window scan reads only its minutes, and FINAL only merges rows of
-- one minute (published_at never changes for a document, so every version of a row has the same key and partition).
CREATE TABLE IF NOT EXISTS ${database}.document_entities
(
    document_id String,
    entity LowCardinality(String) COMMENT 'the ticker (or entity name) ingest found in the document',
    rank UInt8 COMMENT '0 = most relevant',
    published_at DateTime64(3, 'UTC'),
    source LowCardinality(String),
    lang LowCardinality(String),
    sentiment LowCardinality(String) COMMENT 'toward the entity: negative | neutral | positive',
    sentiment_score Float32 COMMENT 'P(positive) - P(negative) toward the entity',
    relevance Float32 COMMENT '0..1: is the document about the entity',
    model_version LowCardinality(String) COMMENT 'the entity model',
    classified_at DateTime64(3, 'UTC'),
    label_source LowCardinality(String) DEFAULT 'model' COMMENT 'model | analyst'
)
ENGINE = ReplacingMergeTree(classified_at)
PARTITION BY toYYYYMM(published_at)
ORDER BY (toStartOfMinute(published_at), document_id, entity)
TTL toDateTime(published_at) + INTERVAL ${documents_ttl_days} DAY;

-- The dedup-safe way to read it: one row per (document, entity), the latest.
CREATE VIEW IF NOT EXISTS ${database}.document_entities_latest AS
SELECT * FROM ${database}.document_entities FINAL;

-- A ticker-scoped alert names its entity and how relevant the documents behind it found it (mean over the
-- documents with an entity row; NULL when every one was counted at document level).
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS entity String DEFAULT '' COMMENT 'the ticker a ticker-scoped alert is about';

ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS entity_relevance Nullable(Float64) COMMENT 'mean relevance of the entity in the documents behind the alert';

ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS entity_basis String DEFAULT '' COMMENT 'entity | document | mixed: which sentiment the alert counted';
