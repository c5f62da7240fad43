// What the Train page needs besides the form: default names and output location, field rules, and the
// calls that split off a test set and start training.

import { call } from "../api";
import type { DatasetDescription, ProjectVersionDescription } from "../types";

export const VERSION_NAME = /^[a-zA-Z0-9_.-]{1,255}$/;
const DESCRIPTION = /^[a-zA-Z0-9\-_. ()':,;?]{1,255}$/;
const BUCKET = /^[0-9A-Za-z.\-_]{3,255}$/;
const KMS_KEY = /^[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,2047}$/;

/** `<project>.<UTC timestamp>`, the AWS console's form (`shelves.2024-11-25T15.41.20`), cut to 255. */
export function defaultVersionName(project: string, now = new Date()): string {
  const stamp = now.toISOString().slice(0, 19).replaceAll(":", ".");
  return `${project.slice(0, 255 - stamp.length - 1)}.${stamp}`;
}

/** The prefix a project's training output goes under when nothing else says. */
export function defaultPrefix(project: string): string {
  return `custom-labels-output/${project}/`;
}

/** The bucket of an `s3://bucket/key` reference. */
export function bucketOf(sourceRef: string): string | undefined {
  const match = /^s3:\/\/([^/]+)\//.exec(sourceRef);
  return match ? match[1] : undefined;
}

/** The output location of the project's latest version that has one. */
export function previousOutput(versions: ProjectVersionDescription[]): { S3Bucket: string; S3KeyPrefix: string } | undefined {
  const latest = versions.find((v) => v.OutputConfig?.S3Bucket);
  return latest?.OutputConfig ? { S3Bucket: latest.OutputConfig.S3Bucket, S3KeyPrefix: latest.OutputConfig.S3KeyPrefix ?? "" } : undefined;
}

export function versionNameProblem(name: string, taken: Set<string>): string | undefined {
  if (!VERSION_NAME.test(name)) return "1–255 characters: letters, digits, '-', '_' and '.'";
  if (taken.has(name)) return "The project already has a model of this name.";
  return undefined;
}

export function descriptionProblem(text: string): string | undefined {
  if (!text) return undefined;
  return DESCRIPTION.test(text) ? undefined : "Up to 255 letters, digits, spaces and - _ . ( ) ' : , ; ?";
}

export function bucketProblem(bucket: string): string | undefined {
  return BUCKET.test(bucket) ? undefined : "3–255 characters: letters, digits, '.', '-' and '_'.";
}

export function prefixProblem(prefix: string): string | undefined {
  return prefix.length <= 1024 ? undefined : "At most 1024 characters.";
}

export function kmsKeyProblem(key: string): string | undefined {
  if (!key) return undefined;
  return KMS_KEY.test(key) ? undefined : "A key ARN, key id, alias or alias ARN.";
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls DescribeDataset until no operation runs on it; fails on *_FAILED or after `seconds`. */
export async function waitForDataset(arn: string, seconds = 180): Promise<DatasetDescription> {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const { DatasetDescription: d } = await call<{ DatasetDescription: DatasetDescription }>("DescribeDataset", { DatasetArn: arn });
    if (d.Status.endsWith("_FAILED")) throw new Error(d.StatusMessage || `The dataset is ${d.Status}`);
    if (!d.Status.endsWith("_IN_PROGRESS")) return d;
    if (Date.now() > end) throw new Error("The dataset is still being updated; try again in a moment.");
    await sleep(700);
  }
}

/**
 * What the console does for a project without test images (spec/workflow.md §2): an empty TEST
 * dataset if there is none, then DistributeDatasetEntries moves 20% of the training images into it.
 */
export async function splitTestSet(
  projectArn: string,
  trainArn: string,
  testArn: string | undefined,
  onStep: (text: string) => void,
): Promise<void> {
  let test = testArn;
  if (!test) {
    onStep("Creating the test dataset…");
    test = (await call<{ DatasetArn: string }>("CreateDataset", { ProjectArn: projectArn, DatasetType: "TEST" })).DatasetArn;
    await waitForDataset(test);
  }
  onStep("Moving 20% of the training images into the test dataset…");
  await call("DistributeDatasetEntries", { Datasets: [{ Arn: trainArn }, { Arn: test }] });
  await waitForDataset(trainArn);
  await waitForDataset(test);
}
