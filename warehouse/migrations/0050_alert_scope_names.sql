-- One name per concept (issue 15): the alerts table's scope_kind / scope_value (0003) become group_by / group_value,
-- the names of the rule's field and of alerts.alert.Alert, so the table, its SQL and the model say the same thing.
-- RENAME COLUMN only changes metadata (no part is rewritten) and keeps every value, so an existing data dir keeps its
-- alerts. IF EXISTS makes each statement a no-op once it has run, so a migration interrupted between them is
-- finished by the next start. Code older than this migration writes scope_kind and is refused: upgrade every part.
ALTER TABLE ${database}.alerts RENAME COLUMN IF EXISTS scope_kind TO group_by;

ALTER TABLE ${database}.alerts RENAME COLUMN IF EXISTS scope_value TO group_value;

ALTER TABLE ${database}.alerts COMMENT COLUMN group_by 'the rule''s group_by: none | topic | ticker | source | lang; watch for a watchlist term';

ALTER TABLE ${database}.alerts COMMENT COLUMN group_value 'the group''s value (a ticker, a topic, the watched term); empty when group_by = none';
