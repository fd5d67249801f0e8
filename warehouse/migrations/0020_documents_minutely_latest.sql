-- Relabeling (issue 10) replaces 0002's rollup. A promoted model rewrites the labels of recent documents by inserting
-- a newer row per id; 0002's materialized view only ever ADDS: it put the id into the uniqExact set of its new
-- (topic, sentiment) and could not take it out of the old one, so a relabeled document counted under both labels.
--
-- Options weighed (measured by `finpulse bench rollup`, 1M documents over 7 days, local chdb 26.9, 2 shared cores):
--   * per-(minute, id) AggregatingMergeTree with argMax(label, classified_at) states: correct, but every read
--     merges states per id then groups again (~1.2 s for a 7-day trend);
--   * no rollup, documents FINAL: correct, but FINAL merges whole rows keyed by id, whatever the time window
--     (~0.8 s; and ORDER BY id cannot prune a 1-hour alert window);
--   * (chosen) this table: one slim row per (minute, id) holding the label, ReplacingMergeTree(classified_at) like
--     documents, read with FINAL. The latest label of an id wins exactly as in documents_latest, so a relabeled
--     document counts once under its new label; ORDER BY (minute, id) prunes to the window, and FINAL only merges
--     rows of one minute (published_at, hence minute, never changes for an id). ~0.5 s for 7 days, ~5 ms for an
--     alert's 1-hour window: as fast as or faster than 0002's rollup (~1.5 s / ~7 ms).
-- Counts over it are count() per (minute, ...) after FINAL - one row per document - and per ticker through
-- ARRAY JOIN tickers (arrayDistinct: a ticker named twice is one document, as the uniqExact sets were).
-- Rows written by `finpulse relabel` say so: pipeline-health figures (throughput, latency, freshness) describe the
-- stream and skip them; every label count reads the latest row per id whoever wrote it. The stream inserts with
-- explicit column names, so its rows get the default.
ALTER TABLE ${database}.documents ADD COLUMN IF NOT EXISTS relabeled UInt8 DEFAULT 0 COMMENT '1 = written by finpulse relabel';

-- Re-created so that its SELECT * surely lists the new column.
CREATE OR REPLACE VIEW ${database}.documents_latest AS
SELECT * FROM ${database}.documents FINAL;

CREATE TABLE IF NOT EXISTS ${database}.documents_minutely_latest
(
    minute DateTime('UTC'),
    id String,
    topic LowCardinality(String) COMMENT 'NULL (unsupported language) as empty',
    sentiment LowCardinality(String) COMMENT 'NULL as empty',
    source LowCardinality(String),
    tickers Array(LowCardinality(String)),
    model_version LowCardinality(String),
    classified_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(classified_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, id)
TTL minute + INTERVAL ${rollup_ttl_days} DAY;

-- Created before the backfill below, so a document inserted while this migration runs is in one of the two (or
-- both: the copies collapse under FINAL).
CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.documents_minutely_latest_mv TO ${database}.documents_minutely_latest AS
SELECT
    toStartOfMinute(published_at) AS minute,
    id,
    ifNull(topic, '') AS topic,
    ifNull(sentiment, '') AS sentiment,
    source,
    arrayDistinct(tickers) AS tickers,
    model_version,
    classified_at
FROM ${database}.documents;

-- Backfill what 0002's rollup held. Its uniqExact states keep hashes of ids, not ids, so they cannot be re-keyed by
-- id: the rows come from documents (the source of truth), latest version per id. Re-running this statement (a
-- migration interrupted after it) inserts the same rows again, which collapse under FINAL.
INSERT INTO ${database}.documents_minutely_latest
SELECT
    toStartOfMinute(published_at) AS minute,
    id,
    ifNull(topic, '') AS topic,
    ifNull(sentiment, '') AS sentiment,
    source,
    arrayDistinct(tickers) AS tickers,
    model_version,
    classified_at
FROM ${database}.documents FINAL;

-- 0002's rollup stops growing; the table stays (its TTL still applies) for the minutes older than the documents'
-- retention, the only thing it has that documents has not. Nothing in FinPulse reads it any more.
DROP VIEW IF EXISTS ${database}.documents_minutely_mv;

ALTER TABLE ${database}.documents_minutely MODIFY COMMENT 'frozen by migration 0020: read documents_minutely_counts or documents_minutely_latest FINAL';

-- Same name and columns as before, now counting each document once under its latest label.
CREATE OR REPLACE VIEW ${database}.documents_minutely_counts AS
SELECT minute, topic, sentiment, source, ticker, count() AS docs
FROM ${database}.documents_minutely_latest FINAL
ARRAY JOIN if(empty(tickers), [''], tickers) AS ticker
GROUP BY minute, topic, sentiment, source, ticker;
