// Train model: the project preselected, a generated version name, description, tags, output location
// and encryption, a summary of what will be trained, a confirmation, then CreateProjectVersion.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useParams } from "react-router";
import { call } from "../api";
import { useDataset, useProject, useVersions } from "../hooks";
import { PageHeader } from "../layout";
import { TagRows } from "../model/TagRows";
import type { TagRow } from "../model/tags";
import { tagRowsProblems, tagRowsValid } from "../model/tags";
import {
  bucketOf,
  bucketProblem,
  defaultPrefix,
  defaultVersionName,
  descriptionProblem,
  kmsKeyProblem,
  prefixProblem,
  previousOutput,
  splitTestSet,
  versionNameProblem,
} from "../model/training";
import type { DatasetDescription, DatasetMetadata } from "../types";
import { versionName } from "../types";
import { Alert, Button, ErrorAlert, Field, KeyValue, Modal, Spinner, useFlash } from "../ui/components";
import "../model/model.css";

interface Form {
  name: string;
  description: string;
  bucket: string;
  prefix: string;
  encrypt: boolean;
  kmsKeyId: string;
  tags: TagRow[];
}

export function TrainPage() {
  const { project: name = "" } = useParams();
  const project = useProject(name);
  const versions = useVersions(project.data?.ProjectArn);
  const datasets = project.data?.Datasets ?? [];
  const train = datasets.find((d) => d.DatasetType === "TRAIN");
  const test = datasets.find((d) => d.DatasetType === "TEST");
  const trainDescription = useDataset(train?.DatasetArn);
  const testDescription = useDataset(test?.DatasetArn);
  const base = `/projects/${encodeURIComponent(name)}`;
  const crumbs = [{ label: "Projects", to: "/projects" }, { label: name, to: base }, { label: "Train model" }];
  if (project.error) return <ErrorAlert error={project.error} />;
  if (!project.data || versions.isPending) return <Spinner label="Loading the project" />;
  return (
    <>
      <PageHeader
        crumbs={crumbs}
        title="Train model"
        description="Training fits a model to the training dataset and evaluates it on the test dataset; each run makes a new model version."
      />
      <ErrorAlert error={versions.error} />
      {!train ? (
        <Alert kind="warning" title="No training dataset">
          Create a training dataset first. <Link to={`${base}/datasets/new`}>Create dataset</Link>
        </Alert>
      ) : (
        <TrainForm
          projectName={name}
          projectArn={project.data.ProjectArn}
          train={train}
          test={test}
          trainDescription={trainDescription.data}
          testDescription={testDescription.data}
          taken={new Set((versions.data ?? []).map((v) => versionName(v.ProjectVersionArn)))}
          previous={previousOutput(versions.data ?? [])}
        />
      )}
    </>
  );
}

function TrainForm({
  projectName,
  projectArn,
  train,
  test,
  trainDescription,
  testDescription,
  taken,
  previous,
}: {
  projectName: string;
  projectArn: string;
  train: DatasetMetadata;
  test?: DatasetMetadata;
  trainDescription?: DatasetDescription;
  testDescription?: DatasetDescription;
  taken: Set<string>;
  previous?: { S3Bucket: string; S3KeyPrefix: string };
}) {
  // Without an earlier version, the bucket the training images are in: it exists and the service
  // reads it (uploads go to the console's images bucket), and outputs get a prefix of their own.
  const firstEntry = useQuery({
    queryKey: ["first-entry", train.DatasetArn],
    enabled: !previous,
    staleTime: Infinity,
    queryFn: async () =>
      (await call<{ DatasetEntries: string[] }>("ListDatasetEntries", { DatasetArn: train.DatasetArn, MaxResults: 1 }))
        .DatasetEntries[0] ?? null,
  });
  const [form, setForm] = useState<Form>(() => ({
    name: defaultVersionName(projectName),
    description: "",
    bucket: previous?.S3Bucket ?? "",
    prefix: previous?.S3KeyPrefix ?? defaultPrefix(projectName),
    encrypt: false,
    kmsKeyId: "",
    tags: [],
  }));
  const [confirming, setConfirming] = useState(false);
  const closeConfirm = useCallback(() => setConfirming(false), []);
  const entryBucket = useMemo(() => {
    if (!firstEntry.data) return undefined;
    try {
      return bucketOf(String(JSON.parse(firstEntry.data)["source-ref"] ?? ""));
    } catch {
      return undefined;
    }
  }, [firstEntry.data]);
  useEffect(() => {
    if (entryBucket) setForm((f) => (f.bucket ? f : { ...f, bucket: entryBucket }));
  }, [entryBucket]);
  const set = (change: Partial<Form>) => setForm((f) => ({ ...f, ...change }));

  const tagCheck = tagRowsProblems(form.tags);
  const problems = {
    name: versionNameProblem(form.name, taken),
    description: descriptionProblem(form.description),
    bucket: form.bucket ? bucketProblem(form.bucket) : "Enter the bucket training writes its results to.",
    prefix: prefixProblem(form.prefix),
    kms: form.encrypt ? kmsKeyProblem(form.kmsKeyId) ?? (form.kmsKeyId ? undefined : "Enter a KMS key.") : undefined,
  };
  const busyDataset = [trainDescription?.Status, testDescription?.Status].some((s) => s?.endsWith("_IN_PROGRESS"));
  const valid = Object.values(problems).every((p) => !p) && tagRowsValid(tagCheck) && !busyDataset;
  const split = !test || testDescription?.DatasetStats?.TotalEntries === 0;

  return (
    <>
      <section className="panel train-panel">
        <h2>Model details</h2>
        <Field label="Project">
          <input value={projectName} readOnly aria-readonly="true" data-testid="train-project" />
        </Field>
        <Field label="Model version name" hint="Generated from the project name and the time; change it if you like." error={problems.name}>
          <input value={form.name} onChange={(event) => set({ name: event.target.value })} maxLength={300} data-testid="version-name" />
        </Field>
        <Field label="Description (optional)" error={problems.description}>
          <input
            value={form.description}
            onChange={(event) => set({ description: event.target.value })}
            maxLength={300}
            placeholder="What changed in this version"
            data-testid="version-description"
          />
        </Field>
      </section>

      <section className="panel">
        <h2>What will be trained</h2>
        <TrainingData train={trainDescription} test={test ? testDescription : undefined} split={split} />
        {busyDataset && <Alert kind="info">A dataset is being updated; training can start once it is complete.</Alert>}
      </section>

      <section className="panel">
        <h2>Training results location</h2>
        <p className="muted">
          Training writes the evaluation summary, the manifest summary and the validation results to this S3 bucket. The
          bucket must exist.
        </p>
        <div className="form-grid">
          <Field
            label="S3 bucket"
            hint={previous ? "The bucket of this project's latest model." : "The bucket the training images are stored in."}
            error={form.bucket || !firstEntry.isPending ? problems.bucket : undefined}
          >
            <input value={form.bucket} onChange={(event) => set({ bucket: event.target.value })} data-testid="output-bucket" />
          </Field>
          <Field label="Key prefix" error={problems.prefix}>
            <input value={form.prefix} onChange={(event) => set({ prefix: event.target.value })} data-testid="output-prefix" />
          </Field>
        </div>
        <label className="checkbox">
          <input type="checkbox" checked={form.encrypt} onChange={(event) => set({ encrypt: event.target.checked })} />
          Customize encryption settings (a KMS key of your own)
        </label>
        {form.encrypt && (
          <Field label="AWS KMS key" error={problems.kms}>
            <input value={form.kmsKeyId} onChange={(event) => set({ kmsKeyId: event.target.value })} placeholder="arn:aws:kms:…:key/…" />
          </Field>
        )}
      </section>

      <section className="panel">
        <h2>Tags (optional)</h2>
        <p className="muted">Tags are attached to the model version; up to 200.</p>
        {tagCheck.overall && <p className="field-error">{tagCheck.overall}</p>}
        <TagRows rows={form.tags} problems={tagCheck.rows} onChange={(tags) => set({ tags })} />
      </section>

      <div className="form-actions">
        <Link className="btn btn-normal" to={`/projects/${encodeURIComponent(projectName)}`}>
          Cancel
        </Link>
        <Button variant="primary" disabled={!valid} onClick={() => setConfirming(true)} data-testid="train-submit">
          Train model
        </Button>
      </div>

      {confirming && (
        <ConfirmTraining
          projectName={projectName}
          projectArn={projectArn}
          train={train}
          test={test}
          split={split}
          form={form}
          onClose={closeConfirm}
        />
      )}
    </>
  );
}

function TrainingData({ train, test, split }: { train?: DatasetDescription; test?: DatasetDescription; split: boolean }) {
  const row = (name: string, testId: string, d?: DatasetDescription) => (
    <tr data-testid={testId}>
      <td className="strong">{name}</td>
      <td className="num">{d?.DatasetStats?.TotalEntries ?? "…"}</td>
      <td className="num">{d?.DatasetStats?.LabeledEntries ?? "…"}</td>
      <td className="num">{d?.DatasetStats?.TotalLabels ?? "…"}</td>
    </tr>
  );
  return (
    <div data-testid="training-summary">
      <table className="table train-data">
        <thead>
          <tr>
            <th>Dataset</th>
            <th className="num">Images</th>
            <th className="num">Labeled</th>
            <th className="num">Labels</th>
          </tr>
        </thead>
        <tbody>
          {row("Training", "train-counts", train)}
          {split ? (
            <tr data-testid="test-counts">
              <td className="strong">Test</td>
              <td colSpan={3}>
                20% of the training dataset will be used for testing
              </td>
            </tr>
          ) : (
            row("Test", "test-counts", test)
          )}
        </tbody>
      </table>
      <p className="muted">
        Model type: {train?.ModelType ? train.ModelType.replaceAll("_", " ").toLowerCase() : "decided by the labels"}.
        {split &&
          " The project has no test images: when training starts, 20% of the training images move into the project's test dataset (DistributeDatasetEntries), and later versions test on the same images."}
      </p>
      {train?.DatasetStats && train.DatasetStats.LabeledEntries === 0 && (
        <Alert kind="warning">No training image is labeled yet: training will fail. Label the images first.</Alert>
      )}
    </div>
  );
}

function ConfirmTraining({
  projectName,
  projectArn,
  train,
  test,
  split,
  form,
  onClose,
}: {
  projectName: string;
  projectArn: string;
  train: DatasetMetadata;
  test?: DatasetMetadata;
  split: boolean;
  form: Form;
  onClose: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const running = useRef(false);
  const [step, setStep] = useState("");
  const [error, setError] = useState<unknown>(null);
  const navigate = useNavigate();
  const queries = useQueryClient();
  const flash = useFlash();
  const tags = Object.fromEntries(form.tags.map((t) => [t.key, t.value]));
  // Closing is ignored while the calls run (they end on the model page); a stable callback keeps the
  // dialog's focus where it is.
  const close = useCallback(() => {
    if (!running.current) onClose();
  }, [onClose]);
  const start = async () => {
    running.current = true;
    setBusy(true);
    setError(null);
    try {
      if (split) await splitTestSet(projectArn, train.DatasetArn, test?.DatasetArn, setStep);
      setStep("Starting training…");
      await call("CreateProjectVersion", {
        ProjectArn: projectArn,
        VersionName: form.name,
        OutputConfig: { S3Bucket: form.bucket, S3KeyPrefix: form.prefix },
        Tags: tags,
        ...(form.description ? { VersionDescription: form.description } : {}),
        ...(form.encrypt && form.kmsKeyId ? { KmsKeyId: form.kmsKeyId } : {}),
      });
      await Promise.all([
        queries.invalidateQueries({ queryKey: ["versions", projectArn] }),
        queries.invalidateQueries({ queryKey: ["project", projectName] }),
        queries.invalidateQueries({ queryKey: ["dataset"] }),
      ]);
      flash("success", `Training of ${form.name} has started.`);
      navigate(`/projects/${encodeURIComponent(projectName)}/models/${encodeURIComponent(form.name)}`);
    } catch (err) {
      running.current = false;
      setError(err);
      setStep("");
      setBusy(false);
      await queries.invalidateQueries({ queryKey: ["project", projectName] });
    }
  };
  return (
    <Modal
      title="Train the model?"
      onClose={close}
      footer={
        <>
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button variant="primary" busy={busy} onClick={start} data-testid="train-confirm">
            Train model
          </Button>
        </>
      }
    >
      <KeyValue
        items={[
          ["Project", projectName],
          ["Model version", form.name],
          ["Test data", split ? "20% of the training images" : "the test dataset"],
          ["Results", `s3://${form.bucket}/${form.prefix}`],
          ["Tags", String(form.tags.length)],
          ["Encryption", form.encrypt ? form.kmsKeyId : "service key"],
        ]}
      />
      <p>
        Training runs in the background and can take from a minute to hours depending on the images. The model page
        shows its progress.
      </p>
      {step && <p className="muted" data-testid="train-step">{step}</p>}
      <ErrorAlert error={error} />
    </Modal>
  );
}
