// An upload under way or done: every file's progress and outcome (accepted, or the server's
// ErrorCode and ErrorMessage), and a hook that keeps those states without re-rendering per byte.

import { useCallback, useEffect, useRef, useState } from "react";
import { Button, ProgressBar } from "../ui/components";
import { formatBytes } from "./files";
import type { FileState } from "./upload";
import type { PlannedFile } from "./UploadPicker";

/** Per-file states, updated at most once per animation frame. */
export function useFileStates() {
  const states = useRef<FileState[]>([]);
  const frame = useRef(0);
  const [snapshot, setSnapshot] = useState<FileState[]>([]);
  useEffect(() => () => cancelAnimationFrame(frame.current), []);
  const reset = useCallback((rows: PlannedFile[]) => {
    states.current = rows.map((row) =>
      row.problem ? { state: "refused", code: row.problem.code, message: row.problem.message } : { state: "waiting" },
    );
    setSnapshot([...states.current]);
  }, []);
  const update = useCallback((index: number, state: FileState) => {
    states.current[index] = state;
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      setSnapshot([...states.current]);
    });
  }, []);
  return { states: snapshot, reset, update };
}

function StateCell({ state }: { state: FileState | undefined }) {
  if (!state || state.state === "waiting") return <span className="muted">waiting</span>;
  if (state.state === "sending")
    return (
      <span className="ds-file-sending">
        <ProgressBar percent={state.percent} label="Upload progress" /> {Math.round(state.percent)}%
      </span>
    );
  if (state.state === "processing") return <span className="muted">checking…</span>;
  if (state.state === "accepted") return <span className="ds-file-accepted">accepted</span>;
  return (
    <span className="ds-file-refused">
      <strong>{state.code}</strong>: {state.message}
    </span>
  );
}

const ALL_ROWS_UP_TO = 500;
const OTHER_ROWS = 200;

/** Which rows to show: all of a small upload; of a large one, the refused and moving ones and a few more. */
function shownRows(rows: PlannedFile[], states: FileState[], all: boolean): number[] {
  const indexes = rows.map((_, i) => i);
  if (all || rows.length <= ALL_ROWS_UP_TO) return indexes;
  let others = 0;
  return indexes.filter((i) => {
    const state = states[i]?.state;
    if (state === "refused" || state === "sending" || state === "processing") return true;
    return others++ < OTHER_ROWS;
  });
}

export function UploadProgress({ rows, states }: { rows: PlannedFile[]; states: FileState[] }) {
  const [all, setAll] = useState(false);
  const shown = shownRows(rows, states, all);
  const done = states.filter((s) => s.state === "accepted" || s.state === "refused").length;
  const accepted = states.filter((s) => s.state === "accepted").length;
  const refused = states.filter((s) => s.state === "refused").length;
  const sentBytes = rows.reduce((sum, row, i) => {
    const s = states[i];
    if (!s || row.problem) return sum;
    if (s.state === "sending") return sum + (row.file.size * s.percent) / 100;
    return s.state === "waiting" ? sum : sum + row.file.size;
  }, 0);
  const totalBytes = rows.reduce((sum, row) => sum + (row.problem ? 0 : row.file.size), 0);
  return (
    <div className="ds-upload-progress" data-testid="upload-progress">
      <div className="ds-upload-progress-head">
        <ProgressBar percent={totalBytes ? (sentBytes / totalBytes) * 100 : 100} label="Upload" />
        <span data-testid="upload-tally">
          {done} of {rows.length} files done · {accepted} accepted · {refused} refused
        </span>
      </div>
      <div className="ds-file-table-wrap">
        <table className="table ds-file-table" data-testid="outcome-table">
          <thead>
            <tr>
              <th>File</th>
              <th>Label</th>
              <th className="num">Size</th>
              <th>Outcome</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((i) => ({ row: rows[i], i })).map(({ row, i }) => (
              <tr key={row.path} data-testid="outcome-row" data-state={states[i]?.state ?? "waiting"}>
                <td className="ds-file-path">{row.path}</td>
                <td>{row.labels.join(", ") || <span className="muted">none</span>}</td>
                <td className="num">{formatBytes(row.file.size)}</td>
                <td>
                  <StateCell state={states[i]} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {shown.length < rows.length && (
        <Button variant="link" onClick={() => setAll(true)}>
          Show all {rows.length} files ({rows.length - shown.length} more accepted or waiting)
        </Button>
      )}
    </div>
  );
}
