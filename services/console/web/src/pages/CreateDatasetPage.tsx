// Create dataset: the starting configuration (one dataset, or training and test), a source per
// dataset, then the import followed live: every uploaded file's outcome and the dataset's status.

import { useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { Link, useParams, useSearchParams } from "react-router";
import { call } from "../api";
import { useProject, useUnsavedChanges } from "../hooks";
import { PageHeader } from "../layout";
import type { DatasetType } from "../types";
import { Alert, Button, ErrorAlert, Spinner } from "../ui/components";
import { DatasetStatus } from "../dataset/DatasetStatus";
import { LeaveDialog } from "../dataset/LeaveDialog";
import { INITIAL_SOURCE, SourceForm, parseS3Uri, sourceProblem } from "../dataset/SourceForm";
import type { SourceState } from "../dataset/SourceForm";
import { plan, sendable } from "../dataset/UploadPicker";
import type { PlannedFile } from "../dataset/UploadPicker";
import { UploadProgress, useFileStates } from "../dataset/UploadProgress";
import { uploadAll } from "../dataset/upload";

type Config = "single" | "split";

interface Run {
  rows?: PlannedFile[];
  arn?: string;
  error?: unknown;
  running: boolean;
}

const TITLES: Record<DatasetType, string> = { TRAIN: "Training dataset", TEST: "Test dataset" };

export function CreateDatasetPage() {
  const { project: name = "" } = useParams();
  const [search] = useSearchParams();
  const project = useProject(name);
  const queries = useQueryClient();
  const [config, setConfig] = useState<Config>("single");
  const [sources, setSources] = useState<Record<DatasetType, SourceState>>({ TRAIN: INITIAL_SOURCE, TEST: INITIAL_SOURCE });
  const [started, setStarted] = useState<DatasetType[] | null>(null);
  const [runs, setRuns] = useState<Partial<Record<DatasetType, Run>>>({});
  const files = { TRAIN: useFileStates(), TEST: useFileStates() };
  const running = Object.values(runs).some((run) => run?.running);
  const picked = !started && (sources.TRAIN.upload.files.length > 0 || sources.TEST.upload.files.length > 0);
  const blocker = useUnsavedChanges(running || picked);
  const base = `/projects/${encodeURIComponent(name)}`;

  if (project.isPending) return <Spinner label="Loading the project" />;
  if (project.error || !project.data) return <ErrorAlert error={project.error} />;
  const projectArn = project.data.ProjectArn;
  const existing = new Set(project.data.Datasets.map((d) => d.DatasetType));
  const missing = (["TRAIN", "TEST"] as DatasetType[]).filter((t) => !existing.has(t));
  const asked = search.get("type")?.toUpperCase();
  const targets: DatasetType[] =
    started ??
    (asked === "TRAIN" || asked === "TEST"
      ? missing.includes(asked)
        ? [asked]
        : []
      : missing.length === 2
        ? config === "single"
          ? ["TRAIN"]
          : ["TRAIN", "TEST"]
        : missing);
  const problems = targets.map((t) => [t, sourceProblem(sources[t])] as const).filter(([, p]) => p);

  const setRun = (type: DatasetType, patch: Partial<Run>) =>
    setRuns((current) => ({ ...current, [type]: { running: false, ...current[type], ...patch } }));

  const createOne = async (type: DatasetType) => {
    const source = sources[type];
    const newDataset = { ProjectArn: projectArn, DatasetType: type };
    setRun(type, { running: true });
    try {
      if (source.kind === "upload") {
        const rows = plan(source.upload);
        files[type].reset(rows);
        setRun(type, { rows });
        await uploadAll(sendable(rows), { NewDataset: newDataset }, files[type].update, (arn) => {
          setRun(type, { arn });
          void queries.invalidateQueries({ queryKey: ["project", name] });
        });
      } else if (source.kind === "s3") {
        const uri = parseS3Uri(source.s3Uri)!;
        const result = await call<{ DatasetArn: string }>("ImportS3Folder", {
          Target: { NewDataset: newDataset },
          S3Bucket: uri.bucket,
          S3KeyPrefix: uri.key,
          LabelByFolder: source.autoLabel,
        });
        setRun(type, { arn: result.DatasetArn });
      } else {
        const uri = parseS3Uri(source.manifestUri);
        const result = await call<{ DatasetArn: string }>("CreateDataset", {
          ...newDataset,
          DatasetSource:
            source.kind === "manifest"
              ? { GroundTruthManifest: { S3Object: { Bucket: uri!.bucket, Name: uri!.key } } }
              : { DatasetArn: source.copyArn },
        });
        setRun(type, { arn: result.DatasetArn });
      }
    } catch (error) {
      setRun(type, { error });
    } finally {
      setRun(type, { running: false });
    }
  };

  const start = async () => {
    setStarted(targets);
    for (const type of targets) await createOne(type);
    await queries.invalidateQueries({ queryKey: ["project", name] });
    await queries.invalidateQueries({ queryKey: ["all-datasets"] });
  };

  return (
    <>
      <PageHeader
        crumbs={[{ label: "Projects", to: "/projects" }, { label: name, to: base }, { label: "Create dataset" }]}
        title="Create dataset"
        description="A dataset holds the images a model learns from (training) or is checked against (test), with their labels."
      />
      {!started && targets.length === 0 && (
        <Alert kind="info" title="Nothing to create">
          {missing.length === 0 ? "This project already has a training and a test dataset." : `This project already has that dataset.`}{" "}
          {missing.map((t) => (
            <Link key={t} to={`${base}/datasets/new?type=${t}`}>
              Create the {t === "TRAIN" ? "training" : "test"} dataset.{" "}
            </Link>
          ))}
          <Link to={base}>Back to the project</Link>
        </Alert>
      )}
      {!started && missing.length === 2 && !asked && (
        <section className="panel">
          <h2>Starting configuration</h2>
          <div className="radio-cards" role="radiogroup" aria-label="Starting configuration">
            <label className="radio-card">
              <input
                type="radio"
                name="config"
                checked={config === "single"}
                onChange={() => setConfig("single")}
                data-testid="config-single"
              />
              <span>
                <strong>Start with a single dataset</strong>
                <br />
                <span className="muted">A training dataset; training splits 20% of it off as the test set.</span>
              </span>
            </label>
            <label className="radio-card">
              <input
                type="radio"
                name="config"
                checked={config === "split"}
                onChange={() => setConfig("split")}
                data-testid="config-split"
              />
              <span>
                <strong>Start with a training dataset and a test dataset</strong>
                <br />
                <span className="muted">Choose the test images yourself; each dataset may come from a different source.</span>
              </span>
            </label>
          </div>
        </section>
      )}
      {targets.map((type) =>
        started ? (
          <CreationView
            key={type}
            type={type}
            run={runs[type]}
            states={files[type].states}
            datasetPath={`${base}/datasets/${type.toLowerCase()}`}
          />
        ) : (
          <section className="panel" key={type}>
            <h2>{TITLES[type]}</h2>
            <SourceForm type={type} value={sources[type]} onChange={(value) => setSources((s) => ({ ...s, [type]: value }))} />
          </section>
        ),
      )}
      {!started && targets.length > 0 && (
        <div className="ds-form-actions">
          {problems.length > 0 && (
            <ul className="plain-list muted" data-testid="create-problems">
              {problems.map(([type, problem]) => (
                <li key={type}>
                  {TITLES[type]}: {problem}
                </li>
              ))}
            </ul>
          )}
          <Link className="btn btn-normal" to={base}>
            Cancel
          </Link>
          <Button variant="primary" disabled={problems.length > 0} onClick={() => void start()} data-testid="create-dataset-submit">
            {targets.length === 2 ? "Create datasets" : "Create dataset"}
          </Button>
        </div>
      )}
      {started && !running && (
        <div className="ds-form-actions">
          <Link className="btn btn-primary" to={base} data-testid="back-to-project">
            Back to the project
          </Link>
        </div>
      )}
      {blocker.state === "blocked" && (
        <LeaveDialog
          message={running ? "An upload is still running. Leave and stop it?" : "Leave and discard the images you chose?"}
          onStay={() => blocker.reset()}
          onLeave={() => blocker.proceed()}
        />
      )}
    </>
  );
}

function CreationView({
  type,
  run,
  states,
  datasetPath,
}: {
  type: DatasetType;
  run?: Run;
  states: ReturnType<typeof useFileStates>["states"];
  datasetPath: string;
}) {
  return (
    <section className="panel" data-testid={`creation-${type.toLowerCase()}`}>
      <div className="panel-title-row">
        <h2>{TITLES[type]}</h2>
        {run?.arn && (
          <Link to={datasetPath} className="btn btn-normal" data-testid={`open-${type.toLowerCase()}`}>
            Open dataset
          </Link>
        )}
      </div>
      {!run && <p className="muted">Waiting for the other dataset…</p>}
      {run?.running && !run.arn && !run.rows && <Spinner label="Starting the import" />}
      <ErrorAlert error={run?.error} title="The dataset was not created" />
      {run?.arn && <DatasetStatus arn={run.arn} />}
      {run?.rows && <UploadProgress rows={run.rows} states={states} />}
    </section>
  );
}
