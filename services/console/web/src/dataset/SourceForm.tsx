// Where a new dataset's images come from: local upload, an S3 folder, a Ground Truth manifest, or a
// copy of an existing dataset (spec/workflow.md §4 "Create dataset").

import { useId } from "react";
import { useQuery } from "@tanstack/react-query";
import { callAll } from "../api";
import type { DatasetType, ProjectDescription } from "../types";
import { projectName } from "../types";
import { Field, Spinner } from "../ui/components";
import { EMPTY_SELECTION, UploadPicker, plan } from "./UploadPicker";
import type { UploadSelection } from "./UploadPicker";

export type SourceKind = "upload" | "s3" | "manifest" | "copy";

export interface SourceState {
  kind: SourceKind;
  upload: UploadSelection;
  s3Uri: string;
  autoLabel: boolean;
  manifestUri: string;
  copyArn: string;
}

export const INITIAL_SOURCE: SourceState = {
  kind: "upload",
  upload: EMPTY_SELECTION,
  s3Uri: "",
  autoLabel: true,
  manifestUri: "",
  copyArn: "",
};

const KINDS: { id: SourceKind; title: string; text: string }[] = [
  { id: "upload", title: "Upload images", text: "From your computer: files or folders." },
  { id: "s3", title: "Import images from S3", text: "All images under an S3 folder." },
  { id: "manifest", title: "Import a Ground Truth manifest", text: "Labeled images from a .manifest file." },
  { id: "copy", title: "Copy an existing dataset", text: "The images and labels of another dataset." },
];

/** `s3://bucket/key` → bucket and key (the key may be empty), or null. */
export function parseS3Uri(uri: string): { bucket: string; key: string } | null {
  const match = /^s3:\/\/([^/\s]+)(?:\/(.*))?$/.exec(uri.trim());
  return match ? { bucket: match[1], key: match[2] ?? "" } : null;
}

/** What is missing before the dataset can be created, or null. */
export function sourceProblem(source: SourceState): string | null {
  switch (source.kind) {
    case "upload":
      return plan(source.upload).some((row) => !row.problem) ? null : "Choose at least one PNG or JPEG image.";
    case "s3":
      return parseS3Uri(source.s3Uri) ? null : "Enter the S3 URI of the folder, e.g. s3://my-bucket/images/.";
    case "manifest": {
      const uri = parseS3Uri(source.manifestUri);
      return uri && uri.key && !uri.key.endsWith("/")
        ? null
        : "Enter the S3 URI of the manifest file, e.g. s3://my-bucket/job/manifests/output/output.manifest.";
    }
    case "copy":
      return source.copyArn ? null : "Choose the dataset to copy.";
  }
}

export function SourceForm({
  type,
  value,
  onChange,
}: {
  type: DatasetType;
  value: SourceState;
  onChange: (value: SourceState) => void;
}) {
  const name = useId();
  const set = (patch: Partial<SourceState>) => onChange({ ...value, ...patch });
  const slug = type.toLowerCase();
  return (
    <div className="ds-source-form" data-testid={`source-${slug}`}>
      <div className="radio-cards" role="radiogroup" aria-label="Image source">
        {KINDS.map((kind) => (
          <label key={kind.id} className="radio-card">
            <input
              type="radio"
              name={name}
              value={kind.id}
              checked={value.kind === kind.id}
              onChange={() => set({ kind: kind.id })}
              data-testid={`source-${slug}-${kind.id}`}
            />
            <span>
              <strong>{kind.title}</strong>
              <br />
              <span className="muted">{kind.text}</span>
            </span>
          </label>
        ))}
      </div>
      {value.kind === "upload" && (
        <UploadPicker value={value.upload} onChange={(upload) => set({ upload })} testId={`upload-${slug}`} />
      )}
      {value.kind === "s3" && (
        <>
          <Field
            label="S3 folder"
            hint="Every PNG and JPEG image under this prefix is imported (sub-folders included)."
          >
            <input
              value={value.s3Uri}
              onChange={(event) => set({ s3Uri: event.target.value })}
              placeholder="s3://bucket/folder/"
              data-testid={`s3-uri-${slug}`}
            />
          </Field>
          <label className="checkbox">
            <input
              type="checkbox"
              checked={value.autoLabel}
              onChange={(event) => set({ autoLabel: event.target.checked })}
              data-testid={`s3-auto-label-${slug}`}
            />
            Automatically attach labels to images based on the folder (folder/&lt;label&gt;/image.jpg)
          </label>
        </>
      )}
      {value.kind === "manifest" && (
        <Field
          label="Manifest file"
          hint="A SageMaker Ground Truth job writes it to <job-name>/manifests/output/output.manifest."
        >
          <input
            value={value.manifestUri}
            onChange={(event) => set({ manifestUri: event.target.value })}
            placeholder="s3://bucket/job/manifests/output/output.manifest"
            data-testid={`manifest-uri-${slug}`}
          />
        </Field>
      )}
      {value.kind === "copy" && <DatasetChooser value={value.copyArn} onChange={(copyArn) => set({ copyArn })} slug={slug} />}
    </div>
  );
}

/** Every dataset of every project, for copying or importing labels. */
export function useAllDatasets() {
  return useQuery({
    queryKey: ["all-datasets"],
    queryFn: async () => {
      const projects = await callAll<ProjectDescription>("DescribeProjects", {}, "ProjectDescriptions");
      return projects.flatMap((project) =>
        project.Datasets.map((dataset) => ({
          arn: dataset.DatasetArn,
          label: `${projectName(project.ProjectArn)} / ${dataset.DatasetType === "TRAIN" ? "training" : "test"}`,
        })),
      );
    },
  });
}

export function DatasetChooser({
  value,
  onChange,
  slug,
  exclude,
  hint = "Project / dataset. Its images and labels are copied; the original is unchanged.",
}: {
  value: string;
  onChange: (arn: string) => void;
  slug: string;
  exclude?: string;
  hint?: string;
}) {
  const datasets = useAllDatasets();
  if (datasets.isPending) return <Spinner small label="Loading datasets" />;
  const options = (datasets.data ?? []).filter((d) => d.arn !== exclude).sort((a, b) => (a.label < b.label ? -1 : 1));
  return (
    <Field label="Dataset" hint={hint}>
      <select value={value} onChange={(event) => onChange(event.target.value)} data-testid={`copy-source-${slug}`}>
        <option value="">Choose a dataset</option>
        {options.map((d) => (
          <option key={d.arn} value={d.arn}>
            {d.label}
          </option>
        ))}
      </select>
    </Field>
  );
}
