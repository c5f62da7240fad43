// Sends picked images to /api/upload in batches: per-file progress from the request's upload
// progress, and between batches a wait until the dataset's import has ended (one update at a time).

import { ApiError, call, upload } from "../api";
import type { DatasetDescription, DatasetType } from "../types";
import { batches } from "./files";
import type { PickedFile } from "./files";

export type FileState =
  | { state: "waiting" }
  | { state: "sending"; percent: number }
  | { state: "processing" }
  | { state: "accepted"; ref: string }
  | { state: "refused"; code: string; message: string };

export interface UploadItem extends PickedFile {
  /** Position in the list the page shows. */
  index: number;
  labels: string[];
}

export type UploadTarget = { DatasetArn: string } | { NewDataset: { ProjectArn: string; DatasetType: DatasetType } };

const BUSY = /IN_PROGRESS/;
const WAIT_LIMIT_MS = 15 * 60 * 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the dataset is not *_IN_PROGRESS; returns its description. */
export async function waitUntilIdle(arn: string, pollMs = 1000): Promise<DatasetDescription> {
  const end = Date.now() + WAIT_LIMIT_MS;
  for (;;) {
    const { DatasetDescription: description } = await call<{ DatasetDescription: DatasetDescription }>(
      "DescribeDataset",
      { DatasetArn: arn },
    );
    if (!BUSY.test(description.Status)) return description;
    if (Date.now() > end) throw new ApiError("TimeoutError", "The dataset is still importing; try again later.", 0);
    await sleep(pollMs);
  }
}

function sendBatch(
  batch: UploadItem[],
  target: UploadTarget,
  onState: (index: number, state: FileState) => void,
) {
  const form = new FormData();
  form.append("target", JSON.stringify(target));
  form.append("labels", JSON.stringify(batch.map((item) => item.labels)));
  for (const item of batch) form.append("files", item.file, item.path);
  // The body carries the files in order, so the bytes sent say which file is on its way.
  const ends: number[] = [];
  let sum = 0;
  for (const item of batch) ends.push((sum += item.file.size));
  return upload(form, (sent, total) => {
    const position = total > 0 ? (sent / total) * sum : 0;
    batch.forEach((item, i) => {
      const start = i === 0 ? 0 : ends[i - 1];
      if (position >= ends[i]) onState(item.index, { state: "processing" });
      else if (position > start)
        onState(item.index, { state: "sending", percent: ((position - start) / Math.max(1, item.file.size)) * 100 });
    });
  });
}

/**
 * Uploads the items; `onDataset` hears the dataset's ARN as soon as the first batch has created it.
 * A batch the server refuses as a whole marks its files refused and stops the upload.
 */
export async function uploadAll(
  items: UploadItem[],
  target: UploadTarget,
  onState: (index: number, state: FileState) => void,
  onDataset: (arn: string) => void,
): Promise<string | undefined> {
  let arn = "DatasetArn" in target ? target.DatasetArn : undefined;
  const groups = batches(items);
  for (const [number, batch] of groups.entries()) {
    if (arn) {
      const description = await waitUntilIdle(arn);
      if (description.Status === "CREATE_FAILED") {
        const why = `The dataset could not be created: ${description.StatusMessage ?? description.Status}`;
        for (const rest of groups.slice(number).flat()) onState(rest.index, { state: "refused", code: "NotSent", message: why });
        return arn;
      }
    }
    let result;
    for (let attempt = 0; ; attempt++) {
      try {
        result = await sendBatch(batch, arn ? { DatasetArn: arn } : target, onState);
        break;
      } catch (error) {
        // Someone else's import started in between: wait for it, then send again.
        if (error instanceof ApiError && error.type === "ResourceInUseException" && arn && attempt < 3) {
          await waitUntilIdle(arn);
          continue;
        }
        const code = error instanceof ApiError ? error.type : "Error";
        const message = error instanceof Error ? error.message : String(error);
        for (const item of batch) onState(item.index, { state: "refused", code, message });
        for (const rest of groups.slice(number + 1).flat())
          onState(rest.index, { state: "refused", code: "NotSent", message: "Not sent: an earlier batch failed." });
        return arn;
      }
    }
    result.Images.forEach((outcome, i) => {
      const item = batch[i];
      if (!item) return;
      onState(
        item.index,
        outcome.ErrorCode
          ? { state: "refused", code: outcome.ErrorCode, message: outcome.ErrorMessage ?? "" }
          : { state: "accepted", ref: outcome.SourceRef ?? "" },
      );
    });
    if (result.DatasetArn && result.DatasetArn !== arn) {
      arn = result.DatasetArn;
      onDataset(arn);
    }
  }
  return arn;
}
