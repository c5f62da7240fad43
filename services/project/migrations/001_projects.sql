-- Projects, tags on any of our resources, and project policies.
CREATE TABLE projects (
    id              bigserial PRIMARY KEY,
    name            text        NOT NULL,
    arn             text        NOT NULL UNIQUE,
    feature         text        NOT NULL,
    auto_update     text,
    status          text        NOT NULL,
    created_ms      bigint      NOT NULL,
    created_at      timestamptz NOT NULL
);
-- A project name is unique among the projects that exist (AWS answers ResourceInUseException).
CREATE UNIQUE INDEX projects_name_key ON projects (name);
-- DescribeProjects pages oldest first by (created_ms, id).
CREATE INDEX projects_created_idx ON projects (created_ms, id);

CREATE TABLE tags (
    resource_arn    text NOT NULL,
    key             text NOT NULL,
    value           text NOT NULL,
    PRIMARY KEY (resource_arn, key)
);

CREATE TABLE project_policies (
    project_id      bigint      NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    revision_id     text        NOT NULL,
    document        text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (project_id, name)
);
