-- Per-minute rollup by topic, sentiment, source and ticker, fed by a materialized view on every insert.
-- It keeps a uniqExact STATE of document ids, not a count: a redelivered document adds its id to a set that
-- already holds it, so it never counts twice, and merging states across tickers/sources counts a multi-ticker
-- document once. Read it with uniqExactMerge(docs) (or the documents_minutely_counts view).
-- A document without tickers is rolled up under ticker ''; topic/sentiment NULL (unsupported language) as ''.
CREATE TABLE IF NOT EXISTS ${database}.documents_minutely
(
    minute DateTime('UTC'),
    topic LowCardinality(String),
    sentiment LowCardinality(String),
    source LowCardinality(String),
    ticker LowCardinality(String),
    docs AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, topic, sentiment, source, ticker)
TTL minute + INTERVAL ${rollup_ttl_days} DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.documents_minutely_mv TO ${database}.documents_minutely AS
SELECT
    toStartOfMinute(published_at) AS minute,
    ifNull(topic, '') AS topic,
    ifNull(sentiment, '') AS sentiment,
    source,
    ticker,
    uniqExactState(id) AS docs
FROM ${database}.documents
ARRAY JOIN if(empty(tickers), [''], tickers) AS ticker
GROUP BY minute, topic, sentiment, source, ticker;

CREATE VIEW IF NOT EXISTS ${database}.documents_minutely_counts AS
SELECT minute, topic, sentiment, source, ticker, uniqExactMerge(docs) AS docs
FROM ${database}.documents_minutely
GROUP BY minute, topic, sentiment, source, ticker;
