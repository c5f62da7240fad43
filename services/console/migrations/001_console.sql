-- Sign-in sessions of the web console and the labels users declared before assigning them.
CREATE TABLE sessions (
    -- sha256 of the cookie's value: a dump of this table holds no usable session.
    id_hash         bytea       PRIMARY KEY,
    access_key_id   text        NOT NULL,
    csrf_token      text        NOT NULL,
    created_at      timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- Labels added in "Manage labels" that no entry uses yet (the dataset service knows only labels in use).
CREATE TABLE declared_labels (
    dataset_arn     text        NOT NULL,
    name            text        COLLATE "C" NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset_arn, name)
);
