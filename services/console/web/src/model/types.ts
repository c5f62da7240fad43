// The shapes of a model's evaluation (GetEvaluation, spec/evaluation.md §6 and §8) and test results
// (ListTestResults, protos/customlabels/training/v1/training_service.proto) as the console receives them.

import type { ProjectVersionDescription } from "../types";

export interface ConfusionCell {
  GroundTruthLabel: string;
  PredictedLabel: string;
  Value: number;
}

export interface AggregateMetrics {
  Precision?: number;
  Recall?: number;
  F1Score?: number;
  AveragePrecision?: number;
  AverageRecall?: number;
  ConfusionMatrix?: ConfusionCell[];
}

export interface LabelEvaluation {
  Label: string;
  NumberOfTestingImages?: number;
  Metrics?: { Threshold?: number; Precision?: number; Recall?: number; F1Score?: number };
}

export interface SummaryFile {
  Version?: number;
  EvaluationDetails?: {
    ProjectVersionArn?: string;
    EvaluationEndTimestamp?: string;
    Labels?: string[];
    NumberOfTrainingImages?: number;
    NumberOfTestingImages?: number;
  };
  AggregatedEvaluationResults?: { Metrics?: AggregateMetrics };
  LabelEvaluationResults?: LabelEvaluation[];
}

export interface ManifestError {
  code?: string;
  message?: string;
}

export interface ManifestStatistics {
  use_case?: string;
  total_json_lines?: number;
  valid_json_lines?: number;
  invalid_json_lines?: number;
  ignored_json_lines?: number;
  error_json_line_indices?: number[];
  errors?: ManifestError[];
}

export interface ManifestSummary {
  errors?: ManifestError[];
  statistics?: { training?: ManifestStatistics; testing?: ManifestStatistics };
}

/** GetEvaluation's answer (services/console/evaluation.py). */
export interface Evaluation {
  ProjectVersion: ProjectVersionDescription;
  Summary: SummaryFile | null;
  ManifestSummary: ManifestSummary | null;
  Files: string[];
  /** Reported files that could not be read (deleted from the bucket since, or not JSON). */
  Unreadable?: { File: string; Type: string; Message: string }[];
}

export interface Box {
  Left: number;
  Top: number;
  Width: number;
  Height: number;
}

export type Outcome = "TRUE_POSITIVE" | "FALSE_POSITIVE" | "FALSE_NEGATIVE" | "TRUE_NEGATIVE";

export interface TestPrediction {
  Name: string;
  Confidence: number;
  Outcome?: Outcome;
  BoundingBox?: Box;
  PresentInGroundTruth: boolean;
}

export interface TestResult {
  SourceRef: string;
  Image?: { Bucket: string; Name: string };
  Width: number;
  Height: number;
  GroundTruth: { Name: string; BoundingBox?: Box }[];
  Predictions: TestPrediction[];
}

export interface TestResultsPage {
  TestResults: TestResult[];
  NextToken?: string;
  TotalCount: number;
}

/** The outcomes the console shows per image (TN is in the API files only, as in AWS). */
export const SHOWN_OUTCOMES: { id: Outcome; short: string; label: string }[] = [
  { id: "TRUE_POSITIVE", short: "TP", label: "True positive" },
  { id: "FALSE_POSITIVE", short: "FP", label: "False positive" },
  { id: "FALSE_NEGATIVE", short: "FN", label: "False negative" },
];

/** The aggregate metrics of a summary file (the server nests them under Metrics). */
export function metricsOf(summary: SummaryFile | null | undefined): AggregateMetrics {
  return summary?.AggregatedEvaluationResults?.Metrics ?? {};
}

/** label → assumed threshold (0-1) from the summary file. */
export function thresholdsOf(summary: SummaryFile | null | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const row of summary?.LabelEvaluationResults ?? []) {
    const threshold = row.Metrics?.Threshold;
    if (typeof threshold === "number") out.set(row.Label, threshold);
  }
  return out;
}
