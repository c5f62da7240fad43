// The Evaluation tab: overall metrics, the per-label table, the confusion matrix, the result files;
// for a failed training the reason, the manifest summary's errors and the validation results.

import { useMemo, useState } from "react";
import { fileUrl } from "../api";
import type { ProjectVersionDescription } from "../types";
import { Alert, Empty, ErrorAlert, Spinner, formatDuration, formatScore } from "../ui/components";
import { ConfusionMatrix } from "./ConfusionMatrix";
import { modelTypeText } from "./ModelSummary";
import { useEvaluation } from "./queries";
import type { Evaluation, LabelEvaluation, ManifestStatistics, ManifestSummary } from "./types";
import { metricsOf } from "./types";
import "./model.css";

export function EvaluationTab({ version }: { version: ProjectVersionDescription }) {
  const evaluation = useEvaluation(version);
  if (version.Status === "TRAINING_IN_PROGRESS") {
    return (
      <section className="panel">
        <h2>Training in progress</h2>
        <p className="muted">
          The evaluation appears here once training and testing are done; the progress above follows the job.
        </p>
      </section>
    );
  }
  if (evaluation.isPending) return <Spinner label="Reading the evaluation" />;
  if (evaluation.error || !evaluation.data) return <ErrorAlert error={evaluation.error} />;
  const data = evaluation.data;
  const unreadable = (data.Unreadable ?? []).map((u) => (
    <Alert key={u.File} kind="warning" title={`The ${u.File.replaceAll("_", " ")} file cannot be read`} testId="unreadable-file">
      {u.Type}: {u.Message}
    </Alert>
  ));
  if (version.Status === "TRAINING_FAILED") {
    return (
      <>
        {unreadable}
        <FailureReport version={version} evaluation={data} />
      </>
    );
  }
  if (!data.Summary) {
    return (
      <section className="panel">
        {unreadable}
        <Empty>This model version has no evaluation summary.</Empty>
        <Downloads version={version} files={data.Files} />
      </section>
    );
  }
  return (
    <>
      {unreadable}
      <Metrics version={version} evaluation={data} />
      <section className="panel">
        <h2>Per-label performance</h2>
        <LabelTable rows={data.Summary.LabelEvaluationResults ?? []} />
      </section>
      {(metricsOf(data.Summary).ConfusionMatrix?.length ?? 0) > 0 && (
        <section className="panel">
          <h2>Confusion matrix</h2>
          <p className="muted">
            Each row is a true label; each cell is the share of its test images the model predicted as the column's label
            (above that label's assumed threshold).
          </p>
          <ConfusionMatrix
            cells={metricsOf(data.Summary).ConfusionMatrix ?? []}
            labels={data.Summary.EvaluationDetails?.Labels ?? []}
          />
        </section>
      )}
      {data.ManifestSummary && <ValidationStatistics summary={data.ManifestSummary} />}
      <section className="panel">
        <h2>Result files</h2>
        <Downloads version={version} files={data.Files} />
      </section>
    </>
  );
}

function Metric({ id, label, value, text, hint }: { id: string; label: string; value?: number; text?: string; hint?: string }) {
  return (
    <div className={value === undefined && text ? "metric metric-text" : "metric"} data-testid={`metric-${id}`} data-value={value ?? ""} title={hint}>
      <div className="metric-label">{label}</div>
      <div className="metric-value">{text ?? formatScore(value)}</div>
    </div>
  );
}

function Metrics({ version, evaluation }: { version: ProjectVersionDescription; evaluation: Evaluation }) {
  const metrics = metricsOf(evaluation.Summary);
  const details = evaluation.Summary?.EvaluationDetails;
  const detection = version.ModelType === "OBJECT_LOCALIZATION" || metrics.AveragePrecision !== undefined;
  const map = metrics.AveragePrecision ?? version.MeanAveragePrecision;
  return (
    <section className="panel">
      <h2>Evaluation summary</h2>
      <div className="metrics" data-testid="evaluation-metrics">
        <Metric id="f1" label="F1 score" value={metrics.F1Score ?? version.EvaluationResult?.F1Score} hint="Mean of the labels' F1 scores" />
        <Metric id="precision" label="Average precision" value={metrics.Precision} hint="Mean of the labels' precision" />
        <Metric id="recall" label="Overall recall" value={metrics.Recall} hint="Mean of the labels' recall" />
        {detection && <Metric id="map" label="mAP@0.5" value={map} hint="Mean average precision at IoU 0.5" />}
        {detection && metrics.AverageRecall !== undefined && (
          <Metric id="mar" label="Average recall (mAR)" value={metrics.AverageRecall} />
        )}
        <Metric id="training-images" label="Training images" value={details?.NumberOfTrainingImages} text={String(details?.NumberOfTrainingImages ?? "–")} />
        <Metric id="test-images" label="Test images" value={details?.NumberOfTestingImages} text={String(details?.NumberOfTestingImages ?? "–")} />
        <Metric
          id="training-time"
          label="Training time"
          value={version.BillableTrainingTimeInSeconds}
          text={formatDuration(version.BillableTrainingTimeInSeconds)}
        />
        <Metric id="model-type" label="Model type" text={modelTypeText(version.ModelType)} />
      </div>
    </section>
  );
}

type SortKey = "label" | "f1" | "precision" | "recall" | "threshold" | "images";

const COLUMNS: { key: SortKey; label: string; get: (row: LabelEvaluation) => number | string | undefined }[] = [
  { key: "label", label: "Label", get: (r) => r.Label },
  { key: "f1", label: "F1 score", get: (r) => r.Metrics?.F1Score },
  { key: "precision", label: "Precision", get: (r) => r.Metrics?.Precision },
  { key: "recall", label: "Recall", get: (r) => r.Metrics?.Recall },
  { key: "threshold", label: "Assumed threshold", get: (r) => r.Metrics?.Threshold },
  { key: "images", label: "Test images", get: (r) => r.NumberOfTestingImages },
];

function compare(a: number | string | undefined, b: number | string | undefined): number {
  if (a === undefined) return b === undefined ? 0 : 1;
  if (b === undefined) return -1;
  if (typeof a === "string" || typeof b === "string") return String(a).localeCompare(String(b));
  return a - b;
}

/** The per-label metrics, sortable by any column (the summary file's order, F1 descending, first). */
export function LabelTable({ rows }: { rows: LabelEvaluation[] }) {
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean } | null>(null);
  const [filter, setFilter] = useState("");
  const shown = useMemo(() => {
    const wanted = filter.trim().toLowerCase();
    const kept = wanted ? rows.filter((r) => r.Label.toLowerCase().includes(wanted)) : [...rows];
    if (!sort) return kept;
    const column = COLUMNS.find((c) => c.key === sort.key)!;
    kept.sort((a, b) => {
      const order = compare(column.get(a), column.get(b));
      return sort.descending ? -order : order;
    });
    return kept;
  }, [rows, sort, filter]);
  const toggle = (key: SortKey) =>
    setSort((current) =>
      current?.key === key ? { key, descending: !current.descending } : { key, descending: key !== "label" },
    );
  if (rows.length === 0) return <Empty>No per-label results.</Empty>;
  return (
    <>
      {rows.length > 10 && (
        <input
          type="search"
          className="label-filter"
          placeholder="Find a label"
          value={filter}
          onChange={(event) => setFilter(event.target.value)}
          aria-label="Find a label"
        />
      )}
      <div className="table-scroll">
        <table className="table" data-testid="label-table">
          <thead>
            <tr>
              {COLUMNS.map((column) => (
                <th
                  key={column.key}
                  className={column.key === "label" ? undefined : "num"}
                  aria-sort={sort?.key === column.key ? (sort.descending ? "descending" : "ascending") : "none"}
                >
                  <button className="sort-button" onClick={() => toggle(column.key)} data-testid={`sort-${column.key}`}>
                    {column.label}
                    <span className="sort-mark" aria-hidden="true">
                      {sort?.key === column.key ? (sort.descending ? "▼" : "▲") : "↕"}
                    </span>
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((row) => (
              <tr key={row.Label} data-testid="label-row" data-label={row.Label}>
                <td className="strong">{row.Label}</td>
                <td className="num" data-value={row.Metrics?.F1Score}>{formatScore(row.Metrics?.F1Score)}</td>
                <td className="num" data-value={row.Metrics?.Precision}>{formatScore(row.Metrics?.Precision)}</td>
                <td className="num" data-value={row.Metrics?.Recall}>{formatScore(row.Metrics?.Recall)}</td>
                <td className="num" data-value={row.Metrics?.Threshold}>{formatScore(row.Metrics?.Threshold)}</td>
                <td className="num">{row.NumberOfTestingImages ?? "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

const FILE_LABELS: [string, string][] = [
  ["summary", "Evaluation summary (JSON)"],
  ["testing_output", "Evaluation manifest of the test images"],
  ["training_output", "Manifest of the training images used"],
  ["manifest_summary", "Manifest summary (manifest_summary.json)"],
];
const VALIDATION = ["manifest_summary", "training_validation", "testing_validation"];

export function Downloads({ version, files }: { version: ProjectVersionDescription; files: string[] }) {
  const hasValidation = files.some((f) => VALIDATION.includes(f));
  const links = FILE_LABELS.filter(([file]) => files.includes(file));
  if (!hasValidation && links.length === 0) return <p className="muted">No result files were written.</p>;
  return (
    <ul className="plain-list downloads" data-testid="downloads">
      {hasValidation && (
        <li>
          <a href={fileUrl(version.ProjectVersionArn, "validation")} download data-testid="download-validation">
            Validation results (zip: manifest summary and both manifests with validation errors)
          </a>
        </li>
      )}
      {links.map(([file, label]) => (
        <li key={file}>
          <a href={fileUrl(version.ProjectVersionArn, file)} download data-testid={`download-${file}`}>
            {label}
          </a>
        </li>
      ))}
    </ul>
  );
}

function FailureReport({ version, evaluation }: { version: ProjectVersionDescription; evaluation: Evaluation }) {
  const summary = evaluation.ManifestSummary;
  return (
    <>
      <Alert kind="error" title="Training failed" testId="training-failure">
        <p className="failure-message">{version.StatusMessage || "No reason was given."}</p>
        {!summary && (
          <p>
            No validation results were written: the manifest itself could not be read (a manifest file error), so only
            this message explains the failure.
          </p>
        )}
      </Alert>
      {summary && <ManifestErrors summary={summary} />}
      {summary && <ValidationStatistics summary={summary} />}
      <section className="panel">
        <h2>Validation results</h2>
        <p className="muted">
          The manifests with validation results mark each line's errors; fix the data (or the labels), then train a new
          version.
        </p>
        <Downloads version={version} files={evaluation.Files} />
      </section>
    </>
  );
}

function ManifestErrors({ summary }: { summary: ManifestSummary }) {
  const groups: [string, { code?: string; message?: string }[]][] = [
    ["Both datasets", summary.errors ?? []],
    ["Training dataset", summary.statistics?.training?.errors ?? []],
    ["Test dataset", summary.statistics?.testing?.errors ?? []],
  ];
  const any = groups.some(([, errors]) => errors.length > 0);
  if (!any) return null;
  return (
    <section className="panel" data-testid="manifest-errors">
      <h2>Errors in the manifest summary</h2>
      {groups
        .filter(([, errors]) => errors.length > 0)
        .map(([title, errors]) => (
          <div key={title}>
            <h3>{title}</h3>
            <ul className="plain-list">
              {errors.map((error, index) => (
                <li key={index}>
                  <code>{error.code}</code> {error.message}
                </li>
              ))}
            </ul>
          </div>
        ))}
    </section>
  );
}

function ValidationStatistics({ summary }: { summary: ManifestSummary }) {
  const rows: [string, ManifestStatistics | undefined][] = [
    ["Training", summary.statistics?.training],
    ["Test", summary.statistics?.testing],
  ];
  if (!rows.some(([, s]) => s)) return null;
  return (
    <section className="panel">
      <h2>Data validation</h2>
      <table className="table" data-testid="validation-statistics">
        <thead>
          <tr>
            <th>Dataset</th>
            <th>Use case</th>
            <th className="num">Lines</th>
            <th className="num">Valid</th>
            <th className="num">Invalid</th>
            <th className="num">Ignored</th>
            <th>Invalid lines</th>
          </tr>
        </thead>
        <tbody>
          {rows
            .filter(([, s]) => s)
            .map(([name, s]) => (
              <tr key={name}>
                <td>{name}</td>
                <td>{s?.use_case?.replaceAll("_", " ").toLowerCase() ?? "–"}</td>
                <td className="num">{s?.total_json_lines ?? "–"}</td>
                <td className="num">{s?.valid_json_lines ?? "–"}</td>
                <td className="num">{s?.invalid_json_lines ?? "–"}</td>
                <td className="num">{s?.ignored_json_lines ?? "–"}</td>
                <td>{lineList(s?.error_json_line_indices ?? [])}</td>
              </tr>
            ))}
        </tbody>
      </table>
    </section>
  );
}

function lineList(lines: number[]): string {
  if (lines.length === 0) return "none";
  const shown = lines.slice(0, 20).join(", ");
  return lines.length > 20 ? `${shown} … (${lines.length} in all)` : shown;
}
