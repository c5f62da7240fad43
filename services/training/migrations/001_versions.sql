-- Model versions and the training job queue.
CREATE TABLE versions (
    id                  bigserial   PRIMARY KEY,
    arn                 text        NOT NULL UNIQUE,
    project_arn         text        NOT NULL,
    version_name        text        NOT NULL,
    status              text        NOT NULL,
    status_message      text        NOT NULL DEFAULT '',
    created_ms          bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    training_end_at     timestamptz,
    billable_s          bigint,
    description         text,
    kms_key_id          text,
    feature             text        NOT NULL DEFAULT 'CUSTOM_LABELS',
    output_bucket       text        NOT NULL,
    output_prefix       text        NOT NULL,
    source_version_arn  text,
    min_units           integer,
    max_units           integer,
    model_type          text,
    f1                  real,
    map                 real,
    -- Label names in the model's output order.
    labels              jsonb,
    -- Object keys of what training wrote: snapshots, validation manifests, summaries, ONNX, metadata.
    files               jsonb       NOT NULL DEFAULT '{}',
    -- TrainingData / TestingData as the caller supplied them (AWS JSON), for TrainingDataResult.Input.
    inputs              jsonb       NOT NULL DEFAULT '{}',
    -- {phase, percent, eta_seconds, attempt, updated_ms} while training.
    progress            jsonb,
    UNIQUE (project_arn, version_name)
);
-- DescribeProjectVersions pages newest first by (created_ms, id).
CREATE INDEX versions_project_idx ON versions (project_arn, created_ms DESC, id DESC);

CREATE TABLE jobs (
    id              bigserial   PRIMARY KEY,
    version_id      bigint      NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
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
