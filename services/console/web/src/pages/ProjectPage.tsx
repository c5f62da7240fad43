// A project: its TRAIN and TEST datasets and its models, live while they change.

import { useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { call, fileUrl } from "../api";
import { useDataset, useProject, useVersions, versionBusy } from "../hooks";
import { PageHeader } from "../layout";
import type { DatasetMetadata, DatasetType, ProjectVersionDescription } from "../types";
import { versionName } from "../types";
import {
  Alert,
  Button,
  ConfirmTyped,
  Empty,
  ErrorAlert,
  ProgressBar,
  Spinner,
  StatusBadge,
  formatDuration,
  formatScore,
  formatTime,
  useFlash,
} from "../ui/components";
import { DatasetCounts } from "../dataset/DatasetStatus";
import { DeleteProjectDialog } from "./DeleteProjectDialog";

export function ProjectPage() {
  const { project: name = "" } = useParams();
  const project = useProject(name);
  const versions = useVersions(project.data?.ProjectArn);
  const [deleting, setDeleting] = useState(false);
  const base = `/projects/${encodeURIComponent(name)}`;
  if (project.isPending) return <Spinner label="Loading the project" />;
  if (project.error || !project.data) return <ErrorAlert error={project.error} />;
  const datasets = project.data.Datasets;
  const train = datasets.find((d) => d.DatasetType === "TRAIN");
  const test = datasets.find((d) => d.DatasetType === "TEST");
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Projects", to: "/projects" }, { label: name }]}
        title={name}
        actions={
          <>
            <Button onClick={() => setDeleting(true)}>Delete project</Button>
            {train ? (
              <Link className="btn btn-primary" to={`${base}/train`} data-testid="train-model">
                Train model
              </Link>
            ) : (
              <Link className="btn btn-primary" to={`${base}/datasets/new`} data-testid="create-dataset">
                Create dataset
              </Link>
            )}
          </>
        }
      />
      <section className="panel">
        <h2>Datasets</h2>
        {!train && !test && (
          <Empty>
            No datasets yet. <Link to={`${base}/datasets/new`}>Create a dataset</Link> from local images, an S3 folder, a
            Ground Truth manifest or another dataset.
          </Empty>
        )}
        {(train || test) && (
          <div className="cards">
            <DatasetCard projectBase={base} type="TRAIN" dataset={train} />
            <DatasetCard projectBase={base} type="TEST" dataset={test} />
          </div>
        )}
        {train && !test && (
          <Alert kind="info">
            No test dataset: training splits 20% of the training images off as the test set. Create a test dataset to
            choose them yourself.
          </Alert>
        )}
      </section>
      <section className="panel">
        <div className="panel-title-row">
          <h2>Models</h2>
          {train && (
            <Link className="btn btn-normal" to={`${base}/train`}>
              Train new model
            </Link>
          )}
        </div>
        <ErrorAlert error={versions.error} />
        {versions.isPending ? (
          <Spinner label="Loading models" />
        ) : (versions.data ?? []).length === 0 ? (
          <Empty>No models yet.</Empty>
        ) : (
          <ModelsTable base={base} versions={versions.data ?? []} projectArn={project.data.ProjectArn} />
        )}
      </section>
      {deleting && <DeleteProjectDialog project={project.data} onClose={() => setDeleting(false)} afterDelete="/projects" />}
    </>
  );
}

function DatasetCard({ projectBase, type, dataset }: { projectBase: string; type: DatasetType; dataset?: DatasetMetadata }) {
  const description = useDataset(dataset?.DatasetArn);
  const [deleting, setDeleting] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const queries = useQueryClient();
  const flash = useFlash();
  const label = type === "TRAIN" ? "Training dataset" : "Test dataset";
  const path = `${projectBase}/datasets/${type.toLowerCase()}`;
  if (!dataset) {
    return (
      <div className="card card-empty" data-testid={`dataset-card-${type.toLowerCase()}`}>
        <h3>{label}</h3>
        <p className="muted">Not created.</p>
        <Link className="btn btn-normal" to={`${projectBase}/datasets/new?type=${type}`}>
          Create {type.toLowerCase()} dataset
        </Link>
      </div>
    );
  }
  const d = description.data;
  const stats = d?.DatasetStats;
  const remove = async () => {
    setBusy(true);
    try {
      await call("DeleteDataset", { DatasetArn: dataset.DatasetArn });
      flash("success", `The ${type.toLowerCase()} dataset is deleted.`);
      setDeleting(false);
      await queries.invalidateQueries({ queryKey: ["project"] });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="card" data-testid={`dataset-card-${type.toLowerCase()}`}>
      <div className="card-title-row">
        <h3>
          <Link to={path}>{label}</Link>
        </h3>
        <StatusBadge status={d?.Status ?? dataset.Status} />
      </div>
      {d?.StatusMessage && <p className="status-message">{d.StatusMessage}</p>}
      {stats && <DatasetCounts stats={stats} />}
      {d?.ModelType && <p className="muted">Labels imply: {d.ModelType.replaceAll("_", " ").toLowerCase()}</p>}
      <div className="card-actions">
        <Link className="btn btn-normal" to={path}>
          Open
        </Link>
        <Button variant="link" onClick={() => setDeleting(true)}>
          Delete
        </Button>
      </div>
      {deleting && (
        <ConfirmTyped
          title={`Delete the ${type.toLowerCase()} dataset?`}
          word="delete"
          action="Delete dataset"
          onConfirm={remove}
          onClose={() => setDeleting(false)}
          busy={busy}
          error={error}
        >
          <p>Its entries and labels are deleted. Models already trained from it keep working.</p>
        </ConfirmTyped>
      )}
    </div>
  );
}

function ModelsTable({ base, versions, projectArn }: { base: string; versions: ProjectVersionDescription[]; projectArn: string }) {
  const [deleting, setDeleting] = useState<ProjectVersionDescription | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const queries = useQueryClient();
  const flash = useFlash();
  const remove = async () => {
    if (!deleting) return;
    setBusy(true);
    try {
      await call("DeleteProjectVersion", { ProjectVersionArn: deleting.ProjectVersionArn });
      flash("success", `Model ${versionName(deleting.ProjectVersionArn)} is being deleted.`);
      setDeleting(null);
      await queries.invalidateQueries({ queryKey: ["versions", projectArn] });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <table className="table" data-testid="models-table">
        <thead>
          <tr>
            <th>Model</th>
            <th>Status</th>
            <th>Status message</th>
            <th>F1 score</th>
            <th>Created</th>
            <th aria-label="Actions" />
          </tr>
        </thead>
        <tbody>
          {versions.map((version) => {
            const name = versionName(version.ProjectVersionArn);
            const progress = version.TrainingProgress;
            const training = version.Status === "TRAINING_IN_PROGRESS";
            const hasValidation = Boolean(version.ManifestSummary);
            const locked = versionBusy(version.Status) || version.Status === "RUNNING";
            return (
              <tr key={version.ProjectVersionArn} data-testid={`model-row-${name}`}>
                <td>
                  <Link to={`${base}/models/${encodeURIComponent(name)}`} className="strong">
                    {name}
                  </Link>
                </td>
                <td>
                  <StatusBadge status={version.Status} />
                </td>
                <td className="status-message-cell">
                  {training && progress ? (
                    <div className="training-progress" data-testid="training-progress">
                      <ProgressBar percent={progress.Percent} label={`Training ${name}`} />
                      <span>
                        {Math.round(progress.Percent)}%
                        {progress.EtaSeconds !== undefined && ` · about ${formatDuration(progress.EtaSeconds)} left`}
                      </span>
                    </div>
                  ) : null}
                  <span className="status-message">{version.StatusMessage}</span>
                </td>
                <td>{formatScore(version.EvaluationResult?.F1Score)}</td>
                <td>{formatTime(version.CreationTimestamp)}</td>
                <td className="actions">
                  {hasValidation && (
                    <a className="btn btn-link" href={fileUrl(version.ProjectVersionArn, "validation")} download>
                      Validation results
                    </a>
                  )}
                  <Button
                    variant="link"
                    disabled={locked}
                    title={locked ? "Not while the model trains, runs or changes state" : undefined}
                    onClick={() => {
                      setError(null);
                      setDeleting(version);
                    }}
                  >
                    Delete
                  </Button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {deleting && (
        <ConfirmTyped
          title={`Delete model ${versionName(deleting.ProjectVersionArn)}?`}
          word="delete"
          action="Delete model"
          onConfirm={remove}
          onClose={() => setDeleting(null)}
          busy={busy}
          error={error}
        >
          <p>The model and its evaluation are deleted; this cannot be undone.</p>
        </ConfirmTyped>
      )}
    </>
  );
}
