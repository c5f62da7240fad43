-- The desired state of the serving service: one row per version that should run on Triton.
CREATE TABLE deployments (
    version_arn   text        PRIMARY KEY,
    -- The model's name in the Triton repository (derived from the ARN).
    model_name    text        NOT NULL UNIQUE,
    -- STARTING (files being written and loaded), RUNNING, or STOPPING (being unloaded).
    state         text        NOT NULL,
    min_units     integer     NOT NULL,
    -- The auto-scaling ceiling; NULL when the start gave none.
    max_units     integer,
    -- The instance count Triton runs now (min_units ≤ units ≤ max_units).
    units         integer     NOT NULL,
    -- model.json of the version: labels, assumed thresholds, input size, decoding.
    spec          jsonb       NOT NULL,
    onnx_bucket   text        NOT NULL,
    onnx_key      text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
