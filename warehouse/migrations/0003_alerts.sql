-- Alerts raised by the rule engine; id is deterministic (rule + scope + window), so a re-evaluated window
-- replaces its alert instead of adding one: read with FINAL.
CREATE TABLE IF NOT EXISTS ${database}.alerts
(
    id String,
    rule_id LowCardinality(String),
    rule_name String,
    severity LowCardinality(String),
    scope_kind LowCardinality(String) COMMENT 'topic | ticker | source | market',
    scope_value String,
    metric LowCardinality(String),
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    value Float64,
    threshold Float64,
    baseline Nullable(Float64),
    doc_count UInt32,
    sample_doc_ids Array(String),
    message String,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY id
TTL window_start + INTERVAL ${alerts_ttl_days} DAY;

-- One row per delivery attempt of an alert to a channel (webhook, ...): the delivery log.
CREATE TABLE IF NOT EXISTS ${database}.alert_deliveries
(
    alert_id String,
    channel LowCardinality(String),
    target String,
    attempt UInt16,
    status LowCardinality(String) COMMENT 'delivered | failed | gave_up',
    http_status Nullable(UInt16),
    error String,
    latency_ms UInt32,
    delivered_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(delivered_at)
ORDER BY (alert_id, delivered_at)
TTL toDateTime(delivered_at) + INTERVAL ${alerts_ttl_days} DAY;
