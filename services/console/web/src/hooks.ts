// Data hooks over the console API (react-query): caching, live polling while something runs.

import { useEffect } from "react";
import { useQuery } from "@tanstack/react-query";
import { useBlocker } from "react-router";
import { call, callAll } from "./api";
import type { DatasetDescription, ProjectDescription, ProjectVersionDescription } from "./types";

/** How often pages poll while a dataset import, a training or a start/stop runs. */
export const POLL_MS = 2000;

const BUSY_VERSION = /IN_PROGRESS|STARTING|STOPPING|DELETING/;
const BUSY_DATASET = /IN_PROGRESS/;

/** One project by name (DescribeProjects with ProjectNames), its datasets included. */
export function useProject(name: string) {
  return useQuery({
    queryKey: ["project", name],
    queryFn: async () => {
      const result = await call<{ ProjectDescriptions: ProjectDescription[] }>("DescribeProjects", {
        ProjectNames: [name],
      });
      const project = result.ProjectDescriptions[0];
      if (!project) throw new Error(`The project ${name} does not exist`);
      return project;
    },
    refetchInterval: (query) =>
      query.state.data?.Datasets.some((d) => BUSY_DATASET.test(d.Status)) || query.state.data?.Status !== "CREATED"
        ? POLL_MS
        : false,
  });
}

/** A dataset's description, polled while an import or update runs. */
export function useDataset(arn: string | undefined) {
  return useQuery({
    queryKey: ["dataset", arn],
    enabled: Boolean(arn),
    queryFn: async () =>
      (await call<{ DatasetDescription: DatasetDescription }>("DescribeDataset", { DatasetArn: arn }))
        .DatasetDescription,
    refetchInterval: (query) => (query.state.data && BUSY_DATASET.test(query.state.data.Status) ? POLL_MS : false),
  });
}

/** Every version of a project, newest first, polled while one trains, starts, stops or is deleted. */
export function useVersions(projectArn: string | undefined) {
  return useQuery({
    queryKey: ["versions", projectArn],
    enabled: Boolean(projectArn),
    queryFn: async () => {
      const versions = await callAll<ProjectVersionDescription>(
        "DescribeProjectVersions",
        { ProjectArn: projectArn },
        "ProjectVersionDescriptions",
      );
      return versions.sort((a, b) => (b.CreationTimestamp ?? 0) - (a.CreationTimestamp ?? 0));
    },
    refetchInterval: (query) => (query.state.data?.some((v) => BUSY_VERSION.test(v.Status)) ? POLL_MS : false),
  });
}

/** Whether a version status means something is still happening. */
export function versionBusy(status: string | undefined): boolean {
  return Boolean(status && BUSY_VERSION.test(status));
}

/**
 * Warns before unsaved changes are lost: the browser's own prompt when the tab closes or reloads,
 * and the returned blocker (render <UnsavedChangesDialog/>) for navigation inside the console.
 */
export function useUnsavedChanges(dirty: boolean) {
  useEffect(() => {
    if (!dirty) return;
    const onBeforeUnload = (event: BeforeUnloadEvent) => {
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    return () => window.removeEventListener("beforeunload", onBeforeUnload);
  }, [dirty]);
  return useBlocker(({ currentLocation, nextLocation }) => dirty && currentLocation.pathname !== nextLocation.pathname);
}
