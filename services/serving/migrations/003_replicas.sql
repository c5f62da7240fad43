-- Several serving replicas, each with its own Triton (a sidecar in Kubernetes). A start is loaded
-- by every replica once its files are in the Triton repository; `error` is why writing them failed.
ALTER TABLE deployments ADD COLUMN files_ready boolean NOT NULL DEFAULT false;
ALTER TABLE deployments ADD COLUMN error text;
-- Models that already run (or are being stopped) were written by the code before this migration.
UPDATE deployments SET files_ready = true WHERE state <> 'STARTING';

-- One row per serving replica, rewritten every round of its control loop; a replica whose row is
-- older than CUSTOMLABELS_SERVING_REPLICA_TTL_S is gone (the leader deletes it).
CREATE TABLE replicas (
    replica_id   text        PRIMARY KEY,
    -- Whether its Triton answered in that round (a replica without one holds no model).
    triton_live  boolean     NOT NULL,
    -- When the round read the deployments its report is about.
    snapshot_at  timestamptz NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now()
);

-- What each replica's Triton holds of this installation's models, with Triton's cumulative
-- counters (the leader's auto-scaler adds them up over the replicas).
CREATE TABLE replica_models (
    replica_id   text    NOT NULL REFERENCES replicas ON DELETE CASCADE,
    model_name   text    NOT NULL,
    -- READY, LOADING (a load in progress or pending) or FAILED (the load failed: `error`).
    state        text    NOT NULL,
    -- Triton instances of the loaded model (0 when not loaded).
    instances    integer NOT NULL,
    requests     bigint  NOT NULL DEFAULT 0,
    executions   bigint  NOT NULL DEFAULT 0,
    queue_ns     bigint  NOT NULL DEFAULT 0,
    infer_ns     bigint  NOT NULL DEFAULT 0,
    error        text,
    PRIMARY KEY (replica_id, model_name)
);
