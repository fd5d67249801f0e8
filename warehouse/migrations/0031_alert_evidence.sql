-- Why an alert fired (issue 12): its numbers, the stories that contributed most and its dashboard drill-down, so
-- the Alerts page and every webhook say the same. ADD COLUMN only: an existing data dir keeps its alerts, and the
-- rows written before this migration read the defaults (window_s computed from their window, no stories).
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS window_value Nullable(Float64) COMMENT 'the window''s measured figure when value is derived from it (z-score, drop)';
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS window_measure String DEFAULT '' COMMENT 'what window_value and baseline count, e.g. negative stories';
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS count LowCardinality(String) DEFAULT 'documents' COMMENT 'the rule''s unit: stories | documents';
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS window_s UInt32 DEFAULT toUInt32(dateDiff('second', window_start, window_end));
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS baseline_s Nullable(UInt32) COMMENT 'trailing baseline length (baseline rules only)';
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS story_count UInt32 DEFAULT 0 COMMENT 'distinct stories behind the alert';
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS top_stories String DEFAULT '[]' COMMENT 'JSON array of alerts.alert.StoryRef, most copies first';
ALTER TABLE ${database}.alerts ADD COLUMN IF NOT EXISTS dashboard_url String DEFAULT '' COMMENT 'the alert''s drill-down on the dashboard';
