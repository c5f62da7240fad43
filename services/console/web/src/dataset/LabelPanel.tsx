// The gallery's filters: by label (with each label's counts, ListLabels) and labeled / unlabeled / errors.

import type { DatasetLabel } from "../types";
import { Button, Spinner } from "../ui/components";
import { labelColor } from "./labelColors";

export type Show = "all" | "labeled" | "unlabeled" | "errors";

export interface Filter {
  label: string | null;
  show: Show;
}

export const NO_FILTER: Filter = { label: null, show: "all" };

const SHOWS: { id: Show; label: string }[] = [
  { id: "all", label: "All images" },
  { id: "labeled", label: "Labeled" },
  { id: "unlabeled", label: "Unlabeled" },
  { id: "errors", label: "Errors" },
];

/** The ListDatasetEntries members of a filter. */
export function filterRequest(filter: Filter): Record<string, unknown> {
  return {
    ...(filter.label !== null ? { ContainsLabels: [filter.label] } : {}),
    ...(filter.show === "labeled" ? { Labeled: true } : filter.show === "unlabeled" ? { Labeled: false } : {}),
    ...(filter.show === "errors" ? { HasErrors: true } : {}),
  };
}

export function ShowFilter({ filter, onChange }: { filter: Filter; onChange: (filter: Filter) => void }) {
  return (
    <div className="ds-segmented" role="radiogroup" aria-label="Show">
      {SHOWS.map((show) => (
        <button
          key={show.id}
          role="radio"
          aria-checked={filter.show === show.id}
          className={filter.show === show.id ? "ds-segment ds-segment-on" : "ds-segment"}
          onClick={() => onChange({ ...filter, show: show.id })}
          data-testid={`show-${show.id}`}
        >
          {show.label}
        </button>
      ))}
    </div>
  );
}

export function LabelPanel({
  labels,
  loading,
  filter,
  onChange,
  onManage,
}: {
  labels: DatasetLabel[];
  loading: boolean;
  filter: Filter;
  onChange: (filter: Filter) => void;
  onManage: () => void;
}) {
  const names = labels.map((l) => l.Name);
  return (
    <aside className="ds-label-panel" data-testid="label-panel">
      <div className="panel-title-row">
        <h2>Labels</h2>
        <Button variant="link" onClick={onManage} data-testid="manage-labels">
          Manage labels
        </Button>
      </div>
      {loading ? (
        <Spinner small label="Loading labels" />
      ) : (
        <ul className="ds-label-filter">
          <li>
            <button
              className={filter.label === null ? "ds-label-filter-item ds-label-filter-on" : "ds-label-filter-item"}
              onClick={() => onChange({ ...filter, label: null })}
              data-testid="label-filter-all"
            >
              <span className="ds-label-filter-name">All labels</span>
            </button>
          </li>
          {labels.map((label) => (
            <li key={label.Name}>
              <button
                className={filter.label === label.Name ? "ds-label-filter-item ds-label-filter-on" : "ds-label-filter-item"}
                aria-pressed={filter.label === label.Name}
                onClick={() => onChange({ ...filter, label: filter.label === label.Name ? null : label.Name })}
                data-testid="label-filter"
                data-label={label.Name}
              >
                <span className="ds-swatch" style={{ background: labelColor(label.Name, names) }} />
                <span className="ds-label-filter-name">{label.Name}</span>
                <span
                  className="ds-label-filter-count"
                  title={`${label.EntryCount} images use it; ${label.BoundingBoxCount} have boxes with it`}
                  data-testid="label-count"
                >
                  {label.EntryCount}
                  {label.BoundingBoxCount > 0 && <span className="muted"> · ▭{label.BoundingBoxCount}</span>}
                </span>
              </button>
            </li>
          ))}
          {labels.length === 0 && <li className="muted">No labels yet.</li>}
        </ul>
      )}
    </aside>
  );
}
