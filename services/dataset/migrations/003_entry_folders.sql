-- SourceRefContains with a "/" in its text is answered from prefix ranges of the primary key
-- (repository.list_entries): the folders a dataset holds are read from this index by a skip scan
-- (one index probe per distinct folder), never by reading the entries themselves. The expression
-- is the source-ref up to its last "/" (NULL without one), and must stay identical to the one the
-- repository queries with (FOLDER_EXPR) for the planner to use the index.
CREATE INDEX entries_folder_idx ON entries (dataset_id, (substring(source_ref FROM '^.*/')));
