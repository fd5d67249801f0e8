-- Alert engine state. Every mutable table is a ReplacingMergeTree keyed by its id with an explicit version
-- (nanoseconds from the writer), so an update is an insert and readers use FINAL; one writer per table
-- (the engine; the dashboard only writes rules, targets, silences and acknowledgements).

-- Alert lifecycle on the existing alerts table: the engine re-inserts an alert row (newer created_at) when it
-- resolves; fingerprint groups the firings of one rule + group value.
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS fingerprint String AFTER id;
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS kind LowCardinality(String) AFTER rule_name;
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS status LowCardinality(String) DEFAULT 'firing' COMMENT 'firing | resolved';
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS started_at DateTime64(3, 'UTC');
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS resolved_at Nullable(DateTime64(3, 'UTC'));
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS silenced UInt8 DEFAULT 0 COMMENT '1 = not sent to webhooks';
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS scope String DEFAULT '' COMMENT 'the rule scope, JSON';

-- The delivery log gains the idempotency key and the event (firing | resolved | test).
ALTER TABLE ${database}.alert_deliveries ADD COLUMN IF NOT EXISTS delivery_id String;
ALTER TABLE ${database}.alert_deliveries ADD COLUMN IF NOT EXISTS event LowCardinality(String) DEFAULT '';

-- Rules from the TOML file (origin = file, re-synced at engine start) and from the dashboard (origin = ui).
CREATE TABLE IF NOT EXISTS ${database}.alert_rules
(
    id String,
    name String,
    kind LowCardinality(String),
    enabled UInt8,
    origin LowCardinality(String),
    definition String COMMENT 'the Rule as JSON',
    deleted UInt8 DEFAULT 0,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Webhook targets. secret '' = use FINPULSE_ALERTS_WEBHOOK_SECRET.
CREATE TABLE IF NOT EXISTS ${database}.alert_targets
(
    name String,
    url String,
    format LowCardinality(String) COMMENT 'generic | slack | alertmanager',
    secret String,
    enabled UInt8,
    origin LowCardinality(String),
    deleted UInt8 DEFAULT 0,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;

-- Per-fingerprint evaluation state (pending since, firing alert, last resolution for the cooldown), so a restarted
-- engine neither re-fires what is firing nor forgets a pending condition.
CREATE TABLE IF NOT EXISTS ${database}.alert_state
(
    fingerprint String,
    rule_id String,
    group_value String,
    state LowCardinality(String) COMMENT 'inactive | pending | firing',
    pending_since Nullable(DateTime64(3, 'UTC')),
    alert_id String,
    fired_at Nullable(DateTime64(3, 'UTC')),
    resolved_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY fingerprint;

-- Silences: target is a fingerprint or a rule id; the newest row per target wins (until in the past = lifted).
CREATE TABLE IF NOT EXISTS ${database}.alert_silences
(
    target String,
    until DateTime64(3, 'UTC'),
    created_by String,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY target;

CREATE TABLE IF NOT EXISTS ${database}.alert_acks
(
    alert_id String,
    acknowledged_by String,
    acknowledged_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(acknowledged_at)
ORDER BY alert_id
TTL toDateTime(acknowledged_at) + INTERVAL ${alerts_ttl_days} DAY;

-- The outbox: one row per (alert event, channel, target) until it is delivered or given up; retried across
-- restarts, so a receiver that is down gets its alerts once it is back.
CREATE TABLE IF NOT EXISTS ${database}.alert_outbox
(
    delivery_id String COMMENT 'idempotency key',
    alert_id String,
    event LowCardinality(String) COMMENT 'firing | resolved',
    channel LowCardinality(String) COMMENT 'webhook | kafka',
    target String,
    payload String COMMENT 'the generic alert JSON; formatted per target at send time',
    status LowCardinality(String) COMMENT 'pending | delivered | gave_up',
    attempts UInt16,
    next_attempt_at DateTime64(3, 'UTC'),
    last_error String,
    created_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY delivery_id
TTL toDateTime(created_at) + INTERVAL ${alerts_ttl_days} DAY;
