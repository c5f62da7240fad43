// The head of a model page: status, status message and live training progress, and the key facts.

import type { ProjectVersionDescription } from "../types";
import { KeyValue, ProgressBar, StatusBadge, formatDuration, formatScore, formatTime } from "../ui/components";
import "./model.css";

const PHASES: Record<string, string> = {
  QUEUED: "Queued",
  VALIDATING: "Validating the data",
  TRAINING: "Training",
  EVALUATING: "Evaluating on the test set",
  EXPORTING: "Writing the results",
  DONE: "Done",
};

/** A model type in words ("object localization"). */
export function modelTypeText(type?: string): string {
  return type ? type.replaceAll("_", " ").toLowerCase() : "–";
}

export function TrainingProgressView({ version }: { version: ProjectVersionDescription }) {
  const progress = version.TrainingProgress;
  if (version.Status !== "TRAINING_IN_PROGRESS" || !progress) return null;
  return (
    <div className="model-progress" data-testid="model-progress">
      <ProgressBar percent={progress.Percent} label="Training progress" />
      <span>
        <strong data-testid="progress-percent">{Math.round(progress.Percent)}%</strong>
        {progress.Phase && ` · ${PHASES[progress.Phase] ?? progress.Phase}`}
        {progress.EtaSeconds !== undefined && progress.EtaSeconds > 0 && ` · about ${formatDuration(progress.EtaSeconds)} left`}
        {progress.Attempt > 1 && ` · attempt ${progress.Attempt}`}
      </span>
    </div>
  );
}

export function ModelSummary({ version }: { version: ProjectVersionDescription }) {
  const failed = /FAILED$/.test(version.Status);
  return (
    <section className="panel model-summary" data-testid="model-summary">
      <div className="model-status-row">
        <StatusBadge status={version.Status} />
        {version.StatusMessage && (
          <span className={failed ? "status-message model-failure" : "status-message"} data-testid="model-status-message">
            {version.StatusMessage}
          </span>
        )}
      </div>
      <TrainingProgressView version={version} />
      <KeyValue
        items={[
          ["Model type", modelTypeText(version.ModelType)],
          ["F1 score", <span data-testid="summary-f1">{formatScore(version.EvaluationResult?.F1Score)}</span>],
          ["Training started", formatTime(version.CreationTimestamp)],
          ["Training ended", formatTime(version.TrainingEndTimestamp)],
          ["Training time", formatDuration(version.BillableTrainingTimeInSeconds)],
          [
            "Inference units",
            version.MinInferenceUnits
              ? `${version.MinInferenceUnits}${version.MaxInferenceUnits ? ` – ${version.MaxInferenceUnits} (auto-scaling)` : ""}`
              : "not started yet",
          ],
          ...(version.VersionDescription ? ([["Description", version.VersionDescription]] as [string, string][]) : []),
        ]}
      />
    </section>
  );
}
