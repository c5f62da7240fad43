// Data hooks of the model pages: one version (live through useVersions), its evaluation, its tags.

import { useQuery } from "@tanstack/react-query";
import { call, loadSession } from "../api";
import { useProject, useVersions } from "../hooks";
import type { ProjectVersionDescription } from "../types";
import { versionName } from "../types";
import type { Evaluation } from "./types";

/** Statuses after which a version's training files are final. */
const NOT_EVALUATED = new Set(["TRAINING_IN_PROGRESS", "COPYING_IN_PROGRESS", "DELETING"]);

/** A project's version by name; `missing` once the versions are loaded without it. */
export function useModel(project: string, version: string) {
  const projectQuery = useProject(project);
  const versions = useVersions(projectQuery.data?.ProjectArn);
  const found = versions.data?.find((v) => versionName(v.ProjectVersionArn) === version);
  return {
    project: projectQuery,
    versions,
    version: found,
    missing: Boolean(versions.data) && !found,
  };
}

/** Whether the version's evaluation and validation files can be read (training is over). */
export function evaluated(version: ProjectVersionDescription | undefined): boolean {
  return Boolean(version && !NOT_EVALUATED.has(version.Status));
}

/** GetEvaluation: the summary file and manifest summary, read once training is over. */
export function useEvaluation(version: ProjectVersionDescription | undefined) {
  const ready = evaluated(version);
  return useQuery({
    queryKey: ["evaluation", version?.ProjectVersionArn, ready],
    enabled: ready,
    staleTime: Infinity,
    queryFn: () => call<Evaluation>("GetEvaluation", { ProjectVersionArn: version?.ProjectVersionArn }),
  });
}

/** The signed-in session (region and account for the API code snippets). */
export function useSession() {
  return useQuery({ queryKey: ["session"], queryFn: loadSession, staleTime: Infinity });
}

/** ListTagsForResource of one ARN. */
export function useTags(arn: string) {
  return useQuery({
    queryKey: ["tags", arn],
    queryFn: async () => (await call<{ Tags?: Record<string, string> }>("ListTagsForResource", { ResourceArn: arn })).Tags ?? {},
  });
}
