// The confusion matrix of a classification model as a heat map: true labels down, predicted labels
// across, each cell coloured by its value (0-1). Values are printed in the cells while they fit and are
// always in the cell's title and the hover caption; up to ~50 labels stay readable by shrinking cells.

import { useMemo, useState } from "react";
import type { ConfusionCell } from "./types";
import "./model.css";

// A sequential blue scale (ColorBrewer "Blues" ends and middle).
const STOPS: [number, [number, number, number]][] = [
  [0, [247, 251, 255]],
  [0.5, [107, 174, 214]],
  [1, [8, 48, 107]],
];

function colour(value: number): string {
  const v = Math.min(1, Math.max(0, value));
  const upper = STOPS.findIndex(([at]) => at >= v);
  const [a, ca] = STOPS[Math.max(0, upper - 1)];
  const [b, cb] = STOPS[Math.max(0, upper)];
  const t = b === a ? 0 : (v - a) / (b - a);
  const [r, g, bl] = ca.map((c, i) => Math.round(c + (cb[i] - c) * t));
  return `rgb(${r}, ${g}, ${bl})`;
}

function cellSize(count: number): { size: number; values: boolean } {
  if (count <= 10) return { size: 64, values: true };
  if (count <= 20) return { size: 40, values: true };
  if (count <= 30) return { size: 26, values: false };
  return { size: 18, values: false };
}

export function ConfusionMatrix({ cells, labels }: { cells: ConfusionCell[]; labels: string[] }) {
  const [hover, setHover] = useState<ConfusionCell | null>(null);
  const { axis, values } = useMemo(() => {
    const names = [...labels];
    const known = new Set(names);
    const lookup = new Map<string, number>();
    for (const cell of cells) {
      for (const name of [cell.GroundTruthLabel, cell.PredictedLabel]) {
        if (!known.has(name)) {
          known.add(name);
          names.push(name);
        }
      }
      lookup.set(`${cell.GroundTruthLabel}\u0000${cell.PredictedLabel}`, cell.Value);
    }
    return { axis: names, values: lookup };
  }, [cells, labels]);
  const { size, values: printed } = cellSize(axis.length);
  return (
    <div className="cm" data-testid="confusion-matrix">
      <div className="cm-scroll">
        <table className="cm-table" style={{ ["--cm-cell" as string]: `${size}px` }}>
          <thead>
            <tr>
              <th className="cm-corner">
                <span className="cm-axis-name">True label ↓ · Predicted →</span>
              </th>
              {axis.map((name) => (
                <th key={name} className="cm-col" scope="col" title={name}>
                  <span>{name}</span>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {axis.map((truth) => (
              <tr key={truth}>
                <th className="cm-row" scope="row" title={truth}>
                  {truth}
                </th>
                {axis.map((predicted) => {
                  const value = values.get(`${truth}\u0000${predicted}`);
                  const cell = { GroundTruthLabel: truth, PredictedLabel: predicted, Value: value ?? 0 };
                  return (
                    <td
                      key={predicted}
                      className={truth === predicted ? "cm-cell cm-diagonal" : "cm-cell"}
                      style={{ background: value === undefined ? undefined : colour(value), color: (value ?? 0) > 0.55 ? "#fff" : undefined }}
                      title={`${truth} → ${predicted}: ${value === undefined ? "no value" : value.toFixed(3)}`}
                      data-truth={truth}
                      data-predicted={predicted}
                      data-value={value ?? ""}
                      onMouseEnter={() => setHover(cell)}
                      onMouseLeave={() => setHover(null)}
                    >
                      {printed && value !== undefined ? value.toFixed(2) : ""}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="cm-footer">
        <div className="cm-legend" aria-hidden="true">
          <span>0</span>
          <span className="cm-gradient" />
          <span>1</span>
        </div>
        <span className="cm-hover" aria-live="polite">
          {hover
            ? `True ${hover.GroundTruthLabel}, predicted ${hover.PredictedLabel}: ${hover.Value.toFixed(3)}`
            : "Point at a cell for its value."}
        </span>
      </div>
    </div>
  );
}
