// Labeling actions on the selected images: choose labels, assign or remove them (image-level),
// or open the selected images in the box editor.

import { useEffect, useState } from "react";
import { Button } from "../ui/components";
import { labelColor } from "./labelColors";

export function LabelingToolbar({
  labels,
  selected,
  total,
  onSelectAll,
  onClear,
  onApply,
  onDraw,
  onManage,
}: {
  labels: string[];
  selected: number;
  total: number;
  onSelectAll: () => void;
  onClear: () => void;
  onApply: (labels: string[], add: boolean) => void;
  onDraw: () => void;
  onManage: () => void;
}) {
  const [chosen, setChosen] = useState<string[]>([]);
  useEffect(() => setChosen((current) => current.filter((l) => labels.includes(l))), [labels]);
  const toggle = (label: string) =>
    setChosen((current) => (current.includes(label) ? current.filter((l) => l !== label) : [...current, label]));
  return (
    <div className="ds-labeling-toolbar" data-testid="labeling-toolbar">
      <div className="ds-labeling-row">
        <strong data-testid="selected-count">
          {selected} of {total} selected
        </strong>
        <Button variant="link" onClick={onSelectAll} data-testid="select-all">
          Select all on this page
        </Button>
        <Button variant="link" onClick={onClear} disabled={selected === 0}>
          Clear selection
        </Button>
        <span className="muted ds-labeling-hint">Click selects, Ctrl/⌘-click adds, Shift-click selects a range.</span>
      </div>
      <div className="ds-labeling-row">
        <span className="ds-labeling-label">Image-level labels:</span>
        {labels.length === 0 ? (
          <span className="muted">
            No labels yet. <Button variant="link" onClick={onManage}>Add labels</Button>
          </span>
        ) : (
          <ul className="ds-chips ds-label-choices" aria-label="Labels to assign or remove">
            {labels.map((label) => (
              <li key={label}>
                <button
                  className={chosen.includes(label) ? "ds-choice ds-choice-on" : "ds-choice"}
                  aria-pressed={chosen.includes(label)}
                  onClick={() => toggle(label)}
                  data-testid="label-choice"
                >
                  <span className="ds-swatch" style={{ background: labelColor(label, labels) }} />
                  <span className="ds-chip-text">{label}</span>
                </button>
              </li>
            ))}
          </ul>
        )}
        <Button
          variant="primary"
          disabled={selected === 0 || chosen.length === 0}
          onClick={() => onApply(chosen, true)}
          data-testid="assign-labels"
        >
          Assign
        </Button>
        <Button disabled={selected === 0 || chosen.length === 0} onClick={() => onApply(chosen, false)} data-testid="remove-labels">
          Remove
        </Button>
        <span className="ds-labeling-divider" />
        <Button disabled={selected === 0} onClick={onDraw} data-testid="draw-boxes">
          Draw bounding boxes
        </Button>
      </div>
    </div>
  );
}
