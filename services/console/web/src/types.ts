// The AWS JSON shapes the console receives (the same members boto3 sees; see spec/api.md).

export type ProjectStatus = "CREATING" | "CREATED" | "DELETING";
export type DatasetType = "TRAIN" | "TEST";
export type DatasetStatus =
  | "CREATE_IN_PROGRESS"
  | "CREATE_COMPLETE"
  | "CREATE_FAILED"
  | "UPDATE_IN_PROGRESS"
  | "UPDATE_COMPLETE"
  | "UPDATE_FAILED"
  | "DELETE_IN_PROGRESS";
export type VersionStatus =
  | "TRAINING_IN_PROGRESS"
  | "TRAINING_COMPLETED"
  | "TRAINING_FAILED"
  | "STARTING"
  | "RUNNING"
  | "FAILED"
  | "STOPPING"
  | "STOPPED"
  | "DELETING"
  | "COPYING_IN_PROGRESS"
  | "COPYING_COMPLETED"
  | "COPYING_FAILED"
  | "DEPRECATED"
  | "EXPIRED";
export type ModelType = "IMAGE_CLASSIFICATION" | "MULTI_LABEL_CLASSIFICATION" | "OBJECT_LOCALIZATION";

export interface S3Object {
  Bucket: string;
  Name: string;
  Version?: string;
}

export interface DatasetMetadata {
  CreationTimestamp?: number;
  DatasetType: DatasetType;
  DatasetArn: string;
  Status: DatasetStatus;
  StatusMessage?: string;
  StatusMessageCode?: string;
}

export interface ProjectDescription {
  ProjectArn: string;
  CreationTimestamp?: number;
  Status: ProjectStatus;
  Datasets: DatasetMetadata[];
}

export interface DatasetStats {
  LabeledEntries: number;
  TotalEntries: number;
  TotalLabels: number;
  ErrorEntries: number;
}

export interface DatasetDescription {
  CreationTimestamp?: number;
  LastUpdatedTimestamp?: number;
  Status: DatasetStatus;
  StatusMessage?: string;
  StatusMessageCode?: string;
  DatasetStats?: DatasetStats;
  ModelType?: ModelType;
}

export interface TrainingProgress {
  Phase?: string;
  Percent: number;
  EtaSeconds?: number;
  Attempt: number;
  LastUpdatedTimestamp?: number;
}

export interface Asset {
  GroundTruthManifest?: { S3Object: S3Object };
}

export interface ProjectVersionDescription {
  ProjectVersionArn: string;
  CreationTimestamp?: number;
  MinInferenceUnits?: number;
  MaxInferenceUnits?: number;
  Status: VersionStatus;
  StatusMessage?: string;
  BillableTrainingTimeInSeconds?: number;
  TrainingEndTimestamp?: number;
  OutputConfig?: { S3Bucket: string; S3KeyPrefix?: string };
  TrainingDataResult?: { Input?: { Assets: Asset[] }; Output?: { Assets: Asset[] }; Validation?: { Assets: Asset[] } };
  TestingDataResult?: {
    Input?: { Assets: Asset[]; AutoCreate?: boolean };
    Output?: { Assets: Asset[] };
    Validation?: { Assets: Asset[] };
  };
  EvaluationResult?: { F1Score: number; Summary?: { S3Object: S3Object } };
  ManifestSummary?: { S3Object: S3Object };
  VersionDescription?: string;
  TrainingProgress?: TrainingProgress;
  ModelType?: ModelType;
  MeanAveragePrecision?: number;
}

export interface DatasetLabel {
  Name: string;
  EntryCount: number;
  BoundingBoxCount: number;
}

export interface CustomLabel {
  Name: string;
  Confidence: number;
  Geometry?: { BoundingBox: { Width: number; Height: number; Left: number; Top: number } };
}

/** Parses the version name out of a version ARN (…:project/<p>/version/<v>/<ms>). */
export function versionName(arn: string): string {
  const match = /:project\/[^/]+\/version\/([^/]+)\/\d+$/.exec(arn);
  return match ? match[1] : arn;
}

/** Parses the project name out of any ARN of ours. */
export function projectName(arn: string): string {
  const match = /:project\/([^/]+)\//.exec(arn);
  return match ? match[1] : arn;
}
