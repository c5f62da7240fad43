// Manage labels: add, rename (every image using the label is rewritten), delete (only a label no
// image uses), and import the labels of another dataset.

import { useState } from "react";
import { call } from "../api";
import type { DatasetLabel } from "../types";
import { Button, ErrorAlert, Field, Modal } from "../ui/components";
import { labelProblem } from "./entries";
import { DatasetChooser } from "./SourceForm";

export function ManageLabelsDialog({
  arn,
  labels,
  dirty,
  onChanged,
  onClose,
}: {
  arn: string;
  labels: DatasetLabel[];
  dirty: boolean;
  onChanged: (labels: DatasetLabel[], entriesChanged: boolean) => void;
  onClose: () => void;
}) {
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [renaming, setRenaming] = useState<{ from: string; to: string } | null>(null);
  const [source, setSource] = useState("");
  const problem = name ? labelProblem(name) : null;
  const renameProblem = renaming ? labelProblem(renaming.to) : null;

  const run = async (operation: string, body: object, entriesChanged = false) => {
    setBusy(true);
    setError(null);
    try {
      const result = await call<{ Labels: DatasetLabel[] }>(operation, { DatasetArn: arn, ...body });
      onChanged(result.Labels, entriesChanged);
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setBusy(false);
    }
  };
  const add = async () => {
    if (!name || problem) return;
    if (await run("AddLabels", { Labels: [name] })) setName("");
  };
  const rename = async () => {
    if (!renaming || renameProblem) return;
    if (await run("RenameLabel", { Label: renaming.from, NewLabel: renaming.to }, true)) setRenaming(null);
  };
  return (
    <Modal
      title="Manage labels"
      onClose={onClose}
      wide
      footer={
        <Button variant="primary" onClick={onClose} data-testid="labels-done">
          Done
        </Button>
      }
    >
      <ErrorAlert error={error} onDismiss={() => setError(null)} />
      <div className="ds-label-add">
        <Field label="Add a label" error={problem ?? undefined}>
          <input
            value={name}
            onChange={(event) => setName(event.target.value)}
            placeholder="e.g. scratch"
            data-testid="new-label"
            onKeyDown={(event) => event.key === "Enter" && void add()}
          />
        </Field>
        <Button variant="primary" onClick={() => void add()} disabled={!name || Boolean(problem)} busy={busy} data-testid="add-label">
          Add label
        </Button>
      </div>
      {dirty && (
        <p className="warning-text" data-testid="labels-dirty">
          Save or discard your unsaved changes before renaming or deleting labels.
        </p>
      )}
      {labels.length === 0 ? (
        <p className="muted">This dataset has no labels yet.</p>
      ) : (
        <table className="table" data-testid="labels-table">
          <thead>
            <tr>
              <th>Label</th>
              <th className="num">Images</th>
              <th className="num">Boxes on</th>
              <th aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {labels.map((label) => {
              const used = label.EntryCount > 0 || label.BoundingBoxCount > 0;
              return (
                <tr key={label.Name} data-testid="label-row">
                  <td className="ds-label-name">
                    {renaming?.from === label.Name ? (
                      <Field label="New name" error={renameProblem ?? undefined}>
                        <input
                          value={renaming.to}
                          onChange={(event) => setRenaming({ from: label.Name, to: event.target.value })}
                          onKeyDown={(event) => event.key === "Enter" && void rename()}
                          data-testid="rename-input"
                        />
                      </Field>
                    ) : (
                      label.Name
                    )}
                  </td>
                  <td className="num">{label.EntryCount}</td>
                  <td className="num">{label.BoundingBoxCount}</td>
                  <td className="actions">
                    {renaming?.from === label.Name ? (
                      <>
                        <Button variant="link" onClick={() => setRenaming(null)}>
                          Cancel
                        </Button>
                        <Button
                          variant="primary"
                          onClick={() => void rename()}
                          disabled={Boolean(renameProblem) || renaming.to === label.Name}
                          busy={busy}
                          data-testid="rename-save"
                        >
                          Rename
                        </Button>
                      </>
                    ) : (
                      <>
                        <Button
                          variant="link"
                          disabled={dirty || busy}
                          onClick={() => setRenaming({ from: label.Name, to: label.Name })}
                          data-testid="rename-label"
                        >
                          Rename
                        </Button>
                        <Button
                          variant="link"
                          disabled={dirty || busy}
                          title={used ? "Only a label that no image uses can be deleted" : undefined}
                          onClick={() => void run("DeleteLabel", { Label: label.Name })}
                          data-testid="delete-label"
                        >
                          Delete
                        </Button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <h3 className="ds-label-import-title">Import labels from another dataset</h3>
      <div className="ds-label-import">
        <DatasetChooser
          value={source}
          onChange={setSource}
          slug="labels"
          exclude={arn}
          hint="Its labels are added to this dataset's list; no image changes."
        />
        <Button
          onClick={() => void run("ImportLabels", { SourceDatasetArn: source })}
          disabled={!source}
          busy={busy}
          data-testid="import-labels"
        >
          Import labels
        </Button>
      </div>
    </Modal>
  );
}
