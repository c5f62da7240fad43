-- Datasets, their entries (one manifest line per image), label statistics and the import job queue.
CREATE TABLE datasets (
    id                  bigserial   PRIMARY KEY,
    arn                 text        NOT NULL UNIQUE,
    project_arn         text        NOT NULL,
    dataset_type        text        NOT NULL CHECK (dataset_type IN ('TRAIN', 'TEST')),
    status              text        NOT NULL,
    status_message      text        NOT NULL DEFAULT '',
    status_message_code text        NOT NULL DEFAULT 'SUCCESS',
    model_type          text,
    total_entries       integer     NOT NULL DEFAULT 0,
    labeled_entries     integer     NOT NULL DEFAULT 0,
    error_entries       integer     NOT NULL DEFAULT 0,
    total_labels        integer     NOT NULL DEFAULT 0,
    created_ms          bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
-- A project holds at most one TRAIN and one TEST dataset (spec/api.md §0.2).
CREATE UNIQUE INDEX datasets_project_type_key ON datasets (project_arn, dataset_type);

CREATE TABLE entries (
    dataset_id      bigint  NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    -- "C" collation: byte order, so pages are stable and the primary key serves the keyset scan.
    source_ref      text    COLLATE "C" NOT NULL,
    line            text    NOT NULL,
    -- Label names in use on the entry (image-level and box labels), for ContainsLabels and stats.
    labels          text[]  NOT NULL DEFAULT '{}',
    image_labels    text[]  NOT NULL DEFAULT '{}',
    box_labels      text[]  NOT NULL DEFAULT '{}',
    is_labeled      boolean NOT NULL,
    has_errors      boolean NOT NULL,
    usable          boolean NOT NULL,
    image_key       text,
    image_width     integer,
    image_height    integer,
    PRIMARY KEY (dataset_id, source_ref)
);
CREATE INDEX entries_labels_idx ON entries USING gin (labels);

CREATE TABLE labels (
    dataset_id          bigint  NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    name                text    COLLATE "C" NOT NULL,
    entry_count         integer NOT NULL,
    bounding_box_count  integer NOT NULL,
    PRIMARY KEY (dataset_id, name)
);

-- Asynchronous work (imports, updates, distribution). Claimed with FOR UPDATE SKIP LOCKED under a
-- renewable lease, so a service killed mid-job leaves work another replica (or its restart) resumes.
CREATE TABLE jobs (
    id              bigserial   PRIMARY KEY,
    dataset_id      bigint      NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    kind            text        NOT NULL,
    payload         jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    lease_owner     text,
    lease_until     timestamptz,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_pending_idx ON jobs (id) WHERE state IN ('queued', 'running');
