-- This installation's name on a Triton that several installations may share (staging and
-- production, two namespaces): every model name starts with cl_<id>_, and the control loop
-- unloads only the models of its own installation that nobody wants.
CREATE TABLE installation (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    id         text        NOT NULL CHECK (id ~ '^[a-z0-9]{8}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation (id) VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 8));
