-- Stories (issue 12): syndicated copies and near-duplicates of one story share a story_id (the id of the first
-- document of the story, assigned by ingest, see ingest/stories.py); novelty is 1 for the first report and decays for
-- later copies. Documents stored before this migration are each their own story: the DEFAULTs give story_id = id and
-- novelty = 1, computed on read for old parts (no mutation rewrites them).
ALTER TABLE ${database}.documents ADD COLUMN IF NOT EXISTS story_id String DEFAULT id COMMENT 'id of the first document of this story (copies share it); = id when alone';

ALTER TABLE ${database}.documents ADD COLUMN IF NOT EXISTS novelty Float32 DEFAULT 1 COMMENT '1 = first report of its story, later copies decay (settings.story_novelty_decay ^ k)';

-- Re-created so that its SELECT * surely lists the new columns.
CREATE OR REPLACE VIEW ${database}.documents_latest AS
SELECT * FROM ${database}.documents FINAL;

-- Rules count distinct stories from the rollup, so it carries story_id too (its old rows: story_id = id, as above).
ALTER TABLE ${database}.documents_minutely_latest ADD COLUMN IF NOT EXISTS story_id String DEFAULT id COMMENT 'documents.story_id';

-- The view is changed in place (one atomic ALTER, re-runnable): no window in which an insert into documents has no
-- view, as DROP + CREATE would have.
ALTER TABLE ${database}.documents_minutely_latest_mv MODIFY QUERY
SELECT
    toStartOfMinute(published_at) AS minute,
    id,
    ifNull(topic, '') AS topic,
    ifNull(sentiment, '') AS sentiment,
    source,
    arrayDistinct(tickers) AS tickers,
    model_version,
    classified_at,
    story_id
FROM ${database}.documents;

-- A document with its own story_id that was inserted between the first ALTER and the one above went through the old
-- view and got story_id = id in the rollup. Re-insert those (rows with story_id != id exist only since this
-- migration began): same classified_at, inserted later, so they win under FINAL. Re-running is harmless.
INSERT INTO ${database}.documents_minutely_latest (minute, id, topic, sentiment, source, tickers, model_version, classified_at, story_id)
SELECT
    toStartOfMinute(published_at) AS minute,
    id,
    ifNull(topic, '') AS topic,
    ifNull(sentiment, '') AS sentiment,
    source,
    arrayDistinct(tickers) AS tickers,
    model_version,
    classified_at,
    story_id
FROM ${database}.documents FINAL
WHERE story_id != id;
