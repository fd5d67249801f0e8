-- Analyst corrections (issue 14): an analyst overrides a document's topic or sentiment, or its sentiment toward one
-- entity, from the dashboard. Each correction is kept with who, when, the label it replaced and the model version
-- that had produced it (the training side reads them through warehouse/queries/corrections.py). The latest
-- correction per (document, field, entity) wins; no TTL: corrections are training data, kept while they are useful.
CREATE TABLE IF NOT EXISTS ${database}.corrections
(
    id String COMMENT 'uuid4',
    document_id String,
    field LowCardinality(String) COMMENT 'topic | sentiment | entity_sentiment',
    entity String DEFAULT '' COMMENT 'the entity of an entity_sentiment correction, else empty',
    label String COMMENT 'the analyst''s label',
    previous_label String COMMENT 'the label it replaced (empty: none)',
    model_version LowCardinality(String) COMMENT 'the model version whose label it overrides',
    analyst String,
    corrected_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(corrected_at)
ORDER BY (document_id, field, entity);

-- A correction is applied like a relabel: a newer row of the document goes into documents, so documents FINAL,
-- documents_latest and documents_minutely_latest (its materialized view) all read the analyst's label. These columns
-- mark such rows, and tell a later relabel or a redelivery through the stream which labels to keep. Rows written
-- before this migration (and every stream row, which names its columns) read the defaults: labeled by the model.
ALTER TABLE ${database}.documents ADD COLUMN IF NOT EXISTS label_source LowCardinality(String) DEFAULT 'model' COMMENT 'model | analyst (a label of this row was corrected)';

ALTER TABLE ${database}.documents ADD COLUMN IF NOT EXISTS corrected_fields Array(LowCardinality(String)) DEFAULT [] COMMENT 'the fields an analyst corrected: topic, sentiment';

ALTER TABLE ${database}.documents ADD COLUMN IF NOT EXISTS corrected_by String DEFAULT '' COMMENT 'the analyst of the latest correction';

-- Re-created so that its SELECT * surely lists the new columns.
CREATE OR REPLACE VIEW ${database}.documents_latest AS
SELECT * FROM ${database}.documents FINAL;
