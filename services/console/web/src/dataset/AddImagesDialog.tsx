// Add images to an existing dataset: the same picker as dataset creation, uploaded into the
// dataset (Target.DatasetArn), with every file's outcome.

import { useState } from "react";
import { Button, ErrorAlert, Modal } from "../ui/components";
import { DatasetStatus } from "./DatasetStatus";
import { EMPTY_SELECTION, UploadPicker, plan, sendable } from "./UploadPicker";
import type { PlannedFile, UploadSelection } from "./UploadPicker";
import { UploadProgress, useFileStates } from "./UploadProgress";
import { uploadAll, waitUntilIdle } from "./upload";

export function AddImagesDialog({ arn, onClose, onUploaded }: { arn: string; onClose: () => void; onUploaded: () => void }) {
  const [selection, setSelection] = useState<UploadSelection>(EMPTY_SELECTION);
  const [rows, setRows] = useState<PlannedFile[] | null>(null);
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const files = useFileStates();
  const planned = plan(selection);
  const count = planned.filter((row) => !row.problem).length;
  const start = async () => {
    const chosen = plan(selection);
    files.reset(chosen);
    setRows(chosen);
    setRunning(true);
    try {
      await uploadAll(sendable(chosen), { DatasetArn: arn }, files.update, () => undefined);
      // The gallery shows the new images once their import has ended.
      await waitUntilIdle(arn);
    } catch (err) {
      setError(err);
    } finally {
      setRunning(false);
      onUploaded();
    }
  };
  return (
    <Modal
      title="Add images"
      wide
      onClose={() => !running && onClose()}
      footer={
        rows ? (
          <Button variant="primary" onClick={onClose} disabled={running} data-testid="add-images-close">
            {running ? "Uploading…" : "Close"}
          </Button>
        ) : (
          <>
            <Button onClick={onClose}>Cancel</Button>
            <Button variant="primary" disabled={count === 0} onClick={() => void start()} data-testid="add-images-submit">
              Upload {count} image{count === 1 ? "" : "s"}
            </Button>
          </>
        )
      }
    >
      {rows ? (
        <>
          <ErrorAlert error={error} />
          <DatasetStatus arn={arn} compact />
          <UploadProgress rows={rows} states={files.states} />
        </>
      ) : (
        <UploadPicker value={selection} onChange={setSelection} testId="add-images" />
      )}
    </Modal>
  );
}
