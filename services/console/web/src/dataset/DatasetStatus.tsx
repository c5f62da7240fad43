// A dataset's live status (DescribeDataset, polled while an import runs): the badge, the status
// message and, on failure, its code; the entry counts.

import { useDataset } from "../hooks";
import type { DatasetStats } from "../types";
import { ErrorAlert, Spinner, StatusBadge } from "../ui/components";
import "./dataset.css";

export function DatasetStatus({ arn, compact = false }: { arn: string; compact?: boolean }) {
  const dataset = useDataset(arn);
  if (dataset.isPending) return <Spinner small label="Loading the dataset status" />;
  if (dataset.error || !dataset.data) return <ErrorAlert error={dataset.error} />;
  const d = dataset.data;
  const failed = d.Status.endsWith("FAILED");
  const stats = d.DatasetStats;
  return (
    <div className={failed ? "ds-dataset-status ds-dataset-status-failed" : "ds-dataset-status"} data-testid="dataset-status">
      <div className="ds-dataset-status-row">
        <StatusBadge status={d.Status} />
        {d.StatusMessage && (
          <span className="status-message" data-testid="status-message">
            {d.StatusMessage}
          </span>
        )}
        {failed && d.StatusMessageCode && (
          <code className="ds-status-code" data-testid="status-code">
            {d.StatusMessageCode}
          </code>
        )}
      </div>
      {stats && !compact && <DatasetCounts stats={stats} className="ds-dataset-stats" />}
    </div>
  );
}

/** A dataset's entry counts: images, labeled, labels, with errors. */
export function DatasetCounts({ stats, className = "" }: { stats: DatasetStats; className?: string }) {
  return (
    <dl className={`stats ${className}`}>
      <div>
        <dt>Images</dt>
        <dd data-testid="stat-total">{stats.TotalEntries}</dd>
      </div>
      <div>
        <dt>Labeled</dt>
        <dd data-testid="stat-labeled">{stats.LabeledEntries}</dd>
      </div>
      <div>
        <dt>Labels</dt>
        <dd>{stats.TotalLabels}</dd>
      </div>
      <div>
        <dt>With errors</dt>
        <dd data-testid="stat-errors">{stats.ErrorEntries}</dd>
      </div>
    </dl>
  );
}
