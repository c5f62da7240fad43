// Choosing local images: a drop zone for files and folders, a file picker and a folder picker,
// the labels the folders give, and the files the server would refuse (shown, never sent).

import { useId, useMemo, useRef, useState } from "react";
import type { DragEvent } from "react";
import { Button } from "../ui/components";
import { labelProblem } from "./entries";
import { filesFromDrop, filesFromInput, folderLabels, formatBytes, refusal, withoutHidden } from "./files";
import type { PickedFile } from "./files";
import type { UploadItem } from "./upload";
import "./dataset.css";

export interface UploadSelection {
  files: PickedFile[];
  useFolderLabels: boolean;
  skippedHidden: number;
}

export const EMPTY_SELECTION: UploadSelection = { files: [], useFolderLabels: true, skippedHidden: 0 };

export interface PlannedFile extends PickedFile {
  labels: string[];
  problem: { code: string; message: string } | null;
}

/** Each file with the labels it would get and, when the server would refuse it, why. */
export function plan(selection: UploadSelection): PlannedFile[] {
  const labels = folderLabels(selection.files.map((f) => f.path));
  return selection.files.map((f, i) => {
    const label = selection.useFolderLabels ? labels[i] : null;
    let problem = refusal(f.file, f.path);
    if (!problem && label !== null && labelProblem(label))
      problem = { code: "InvalidParameterException", message: `The folder name cannot be a label: ${labelProblem(label)}` };
    return { ...f, labels: label === null ? [] : [label], problem };
  });
}

/** The files of a plan that are sent, numbered by their row. */
export function sendable(rows: PlannedFile[]): UploadItem[] {
  return rows.flatMap((row, index) => (row.problem ? [] : [{ file: row.file, path: row.path, labels: row.labels, index }]));
}

function merge(current: PickedFile[], added: PickedFile[]): PickedFile[] {
  const seen = new Set(current.map((f) => f.path));
  const out = [...current];
  for (const f of added) {
    if (seen.has(f.path)) continue;
    seen.add(f.path);
    out.push(f);
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export function UploadPicker({
  value,
  onChange,
  testId = "upload",
}: {
  value: UploadSelection;
  onChange: (value: UploadSelection) => void;
  testId?: string;
}) {
  const [over, setOver] = useState(false);
  const [reading, setReading] = useState(false);
  const filesInput = useRef<HTMLInputElement>(null);
  const folderInput = useRef<HTMLInputElement>(null);
  const checkboxId = useId();
  const rows = useMemo(() => plan(value), [value]);
  const folderLabelCounts = useMemo(() => {
    const counts = new Map<string, number>();
    for (const label of folderLabels(value.files.map((f) => f.path)))
      if (label !== null) counts.set(label, (counts.get(label) ?? 0) + 1);
    return [...counts].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }, [value.files]);

  const add = (picked: PickedFile[]) => {
    const { files, skipped } = withoutHidden(picked);
    onChange({ ...value, files: merge(value.files, files), skippedHidden: value.skippedHidden + skipped });
  };
  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setOver(false);
    setReading(true);
    filesFromDrop(event.dataTransfer)
      .then(add)
      .finally(() => setReading(false));
  };
  const accepted = rows.filter((r) => !r.problem);
  const refused = rows.length - accepted.length;
  const bytes = accepted.reduce((sum, r) => sum + r.file.size, 0);
  return (
    <div className="ds-upload-picker" data-testid={testId}>
      <div
        className={over ? "ds-drop-zone ds-drop-zone-over" : "ds-drop-zone"}
        onDragOver={(event) => {
          event.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
        data-testid="drop-zone"
      >
        <p className="ds-drop-title">Drag and drop images or folders here</p>
        <p className="muted">PNG or JPEG, up to 15 MB each. Sub-folders can become labels.</p>
        <div className="ds-drop-actions">
          <Button onClick={() => filesInput.current?.click()}>Choose files</Button>
          <Button onClick={() => folderInput.current?.click()}>Choose folder</Button>
        </div>
        <input
          ref={filesInput}
          type="file"
          multiple
          accept="image/png,image/jpeg,.png,.jpg,.jpeg"
          hidden
          data-testid="file-input"
          onChange={(event) => {
            add(filesFromInput(event.target.files));
            event.target.value = "";
          }}
        />
        <input
          ref={folderInput}
          type="file"
          multiple
          hidden
          data-testid="folder-input"
          {...{ webkitdirectory: "" }}
          onChange={(event) => {
            add(filesFromInput(event.target.files));
            event.target.value = "";
          }}
        />
        {reading && <p className="muted">Reading the dropped folders…</p>}
      </div>
      {rows.length > 0 && (
        <div className="ds-upload-summary">
          <p data-testid="upload-count">
            <strong>{accepted.length}</strong> image{accepted.length === 1 ? "" : "s"} to upload ({formatBytes(bytes)})
            {refused > 0 && <span className="warning-text"> · {refused} will not be uploaded (see below)</span>}
            {value.skippedHidden > 0 && <span className="muted"> · {value.skippedHidden} hidden files skipped</span>}
            <Button variant="link" onClick={() => onChange(EMPTY_SELECTION)}>
              Clear
            </Button>
          </p>
          {folderLabelCounts.length > 0 && (
            <div className="ds-folder-labels">
              <label className="checkbox" htmlFor={checkboxId}>
                <input
                  id={checkboxId}
                  type="checkbox"
                  checked={value.useFolderLabels}
                  onChange={(event) => onChange({ ...value, useFolderLabels: event.target.checked })}
                  data-testid="use-folder-labels"
                />
                Use folder names as labels
              </label>
              <ul className="ds-chips" data-testid="folder-labels">
                {folderLabelCounts.map(([label, count]) => (
                  <li key={label} className={value.useFolderLabels ? "ds-chip" : "ds-chip ds-chip-off"}>
                    <span className="ds-chip-text">{label}</span> <span className="ds-chip-count">{count}</span>
                  </li>
                ))}
              </ul>
            </div>
          )}
          <FileTable rows={rows} />
        </div>
      )}
    </div>
  );
}

const SHOWN_ROWS = 500;

function FileTable({ rows }: { rows: PlannedFile[] }) {
  const [all, setAll] = useState(false);
  const shown = all ? rows : rows.slice(0, SHOWN_ROWS);
  return (
    <div className="ds-file-table-wrap">
      <table className="table ds-file-table" data-testid="file-table">
        <thead>
          <tr>
            <th>File</th>
            <th>Label</th>
            <th className="num">Size</th>
            <th>Check</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((row) => (
            <tr key={row.path} data-testid="file-row" className={row.problem ? "ds-row-refused" : undefined}>
              <td className="ds-file-path">{row.path}</td>
              <td>{row.labels.join(", ") || <span className="muted">none</span>}</td>
              <td className="num">{formatBytes(row.file.size)}</td>
              <td>
                {row.problem ? (
                  <span className="ds-file-refused">
                    <strong>{row.problem.code}</strong>: {row.problem.message}
                  </span>
                ) : (
                  <span className="muted">ready</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length > shown.length && (
        <Button variant="link" onClick={() => setAll(true)}>
          Show all {rows.length} files
        </Button>
      )}
    </div>
  );
}
