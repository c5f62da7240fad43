-- Keep ListDatasetEntries pages flat on large datasets: sparse filters get partial indexes in page
-- order, and substring search (SourceRefContains) a trigram index.
CREATE INDEX entries_errors_idx ON entries (dataset_id, source_ref) WHERE has_errors;
CREATE INDEX entries_unlabeled_idx ON entries (dataset_id, source_ref) WHERE NOT is_labeled;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE INDEX entries_source_ref_trgm_idx ON entries USING gin (source_ref gin_trgm_ops);
