// Projects: the paged list, "Create project", and delete with typed confirmation.

import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate } from "react-router";
import { call } from "../api";
import { PageHeader } from "../layout";
import type { ProjectDescription } from "../types";
import { projectName } from "../types";
import { Button, Empty, ErrorAlert, Field, Modal, Pager, Spinner, StatusBadge, formatTime, useFlash } from "../ui/components";
import { DeleteProjectDialog } from "./DeleteProjectDialog";

const PAGE_SIZE = 20;
const NAME = /^[a-zA-Z0-9_.-]{1,255}$/;

export function ProjectsPage() {
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<ProjectDescription | null>(null);
  const page = tokens.length;
  const token = tokens[tokens.length - 1];
  const projects = useQuery({
    queryKey: ["projects", token],
    queryFn: () =>
      call<{ ProjectDescriptions: ProjectDescription[]; NextToken?: string }>("DescribeProjects", {
        MaxResults: PAGE_SIZE,
        ...(token ? { NextToken: token } : {}),
      }),
    refetchInterval: (query) =>
      query.state.data?.ProjectDescriptions.some((p) => p.Status !== "CREATED") ? 2000 : false,
  });
  const items = projects.data?.ProjectDescriptions ?? [];
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Projects" }]}
        title="Projects"
        description="A project holds one use case: its training and test datasets and the models trained from them."
        actions={
          <Button variant="primary" onClick={() => setCreating(true)} data-testid="create-project">
            Create project
          </Button>
        }
      />
      <ErrorAlert error={projects.error} />
      <section className="panel">
        {projects.isPending ? (
          <Spinner label="Loading projects" />
        ) : items.length === 0 && page === 1 ? (
          <Empty>
            No projects yet. <Button variant="link" onClick={() => setCreating(true)}>Create your first project</Button>.
          </Empty>
        ) : (
          <table className="table" data-testid="projects-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Status</th>
                <th>Datasets</th>
                <th>Created</th>
                <th aria-label="Actions" />
              </tr>
            </thead>
            <tbody>
              {items.map((project) => {
                const name = projectName(project.ProjectArn);
                return (
                  <tr key={project.ProjectArn}>
                    <td>
                      <Link to={`/projects/${encodeURIComponent(name)}`} className="strong">
                        {name}
                      </Link>
                    </td>
                    <td>
                      <StatusBadge status={project.Status} />
                    </td>
                    <td>
                      {project.Datasets.length === 0
                        ? "none"
                        : project.Datasets.map((d) => d.DatasetType.toLowerCase()).sort().reverse().join(", ")}
                    </td>
                    <td>{formatTime(project.CreationTimestamp)}</td>
                    <td className="actions">
                      <Button variant="link" onClick={() => setDeleting(project)} aria-label={`Delete ${name}`}>
                        Delete
                      </Button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
        <Pager
          page={page}
          hasNext={Boolean(projects.data?.NextToken)}
          busy={projects.isFetching}
          onPrevious={() => setTokens((t) => t.slice(0, -1))}
          onNext={() => setTokens((t) => [...t, projects.data?.NextToken])}
        />
      </section>
      {creating && <CreateProjectDialog onClose={() => setCreating(false)} />}
      {deleting && <DeleteProjectDialog project={deleting} onClose={() => setDeleting(null)} />}
    </>
  );
}

function CreateProjectDialog({ onClose }: { onClose: () => void }) {
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const navigate = useNavigate();
  const queries = useQueryClient();
  const flash = useFlash();
  const problem = name && !NAME.test(name) ? "1–255 characters: letters, digits, '-', '_' and '.'" : undefined;
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      await call("CreateProject", { ProjectName: name });
      await queries.invalidateQueries({ queryKey: ["projects"] });
      flash("success", `Project ${name} created.`);
      navigate(`/projects/${encodeURIComponent(name)}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal
      title="Create project"
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" busy={busy} disabled={!name || Boolean(problem)} onClick={create} data-testid="create-project-submit">
            Create project
          </Button>
        </>
      }
    >
      <ErrorAlert error={error} />
      <Field label="Project name" hint="Letters, digits, hyphens, underscores and periods." error={problem}>
        <input
          value={name}
          onChange={(event) => setName(event.target.value)}
          maxLength={300}
          placeholder="my-project"
          data-testid="project-name"
          onKeyDown={(event) => event.key === "Enter" && name && !problem && void create()}
        />
      </Field>
    </Modal>
  );
}
