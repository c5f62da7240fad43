// Deleting a project: AWS refuses while datasets or models exist, so the dialog offers to delete
// them first (not while a model trains or runs), then deletes the project.

import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router";
import { call, callAll } from "../api";
import type { ProjectDescription, ProjectVersionDescription } from "../types";
import { projectName, versionName } from "../types";
import { ConfirmTyped, Spinner, StatusBadge, useFlash } from "../ui/components";

const BLOCKING = /TRAINING_IN_PROGRESS|STARTING|RUNNING|STOPPING|COPYING_IN_PROGRESS/;

async function waitUntil(check: () => Promise<boolean>, seconds: number): Promise<boolean> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return false;
}

export function DeleteProjectDialog({
  project,
  onClose,
  afterDelete,
}: {
  project: ProjectDescription;
  onClose: () => void;
  afterDelete?: string;
}) {
  const name = projectName(project.ProjectArn);
  const [withContents, setWithContents] = useState(true);
  const [busy, setBusy] = useState(false);
  const [step, setStep] = useState("");
  const [error, setError] = useState<unknown>(null);
  const queries = useQueryClient();
  const navigate = useNavigate();
  const flash = useFlash();
  const versions = useQuery({
    queryKey: ["versions", project.ProjectArn],
    queryFn: () =>
      callAll<ProjectVersionDescription>("DescribeProjectVersions", { ProjectArn: project.ProjectArn }, "ProjectVersionDescriptions"),
  });
  const models = versions.data ?? [];
  const blocking = models.filter((v) => BLOCKING.test(v.Status));
  const contents = project.Datasets.length + models.length;

  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      if (withContents && contents > 0) {
        for (const version of models) {
          if (version.Status === "DELETING") continue;
          setStep(`Deleting model ${versionName(version.ProjectVersionArn)}…`);
          await call("DeleteProjectVersion", { ProjectVersionArn: version.ProjectVersionArn });
        }
        for (const dataset of project.Datasets) {
          setStep(`Deleting the ${dataset.DatasetType.toLowerCase()} dataset…`);
          await call("DeleteDataset", { DatasetArn: dataset.DatasetArn });
        }
        setStep("Waiting for the models to be deleted…");
        await waitUntil(async () => {
          const left = await callAll("DescribeProjectVersions", { ProjectArn: project.ProjectArn }, "ProjectVersionDescriptions");
          return left.length === 0;
        }, 60);
      }
      setStep("Deleting the project…");
      await call("DeleteProject", { ProjectArn: project.ProjectArn });
      await queries.invalidateQueries({ queryKey: ["projects"] });
      flash("success", `Project ${name} is being deleted.`);
      onClose();
      if (afterDelete) navigate(afterDelete);
    } catch (err) {
      setError(err);
      setStep("");
      setBusy(false);
      await queries.invalidateQueries({ queryKey: ["versions", project.ProjectArn] });
    }
  };

  return (
    <ConfirmTyped
      title={`Delete project ${name}?`}
      word="delete"
      action="Delete project"
      onConfirm={remove}
      onClose={onClose}
      busy={busy}
      error={error}
    >
      {versions.isPending ? (
        <Spinner label="Reading the project's models" />
      ) : contents === 0 ? (
        <p>The project has no datasets and no models. Deleting it cannot be undone.</p>
      ) : (
        <>
          <p>
            The project still has {project.Datasets.length} dataset(s) and {models.length} model(s). A project can only be
            deleted once they are gone.
          </p>
          <ul className="plain-list" data-testid="project-contents">
            {project.Datasets.map((d) => (
              <li key={d.DatasetArn}>
                {d.DatasetType.toLowerCase()} dataset <StatusBadge status={d.Status} />
              </li>
            ))}
            {models.map((v) => (
              <li key={v.ProjectVersionArn}>
                model {versionName(v.ProjectVersionArn)} <StatusBadge status={v.Status} />
              </li>
            ))}
          </ul>
          {blocking.length > 0 ? (
            <p className="warning-text">
              {blocking.map((v) => versionName(v.ProjectVersionArn)).join(", ")} is training or running: stop it (or let
              training finish) before deleting the project.
            </p>
          ) : (
            <label className="checkbox">
              <input
                type="checkbox"
                checked={withContents}
                onChange={(event) => setWithContents(event.target.checked)}
                data-testid="delete-contents"
              />
              Delete its datasets and models first
            </label>
          )}
        </>
      )}
      {step && <p className="muted">{step}</p>}
    </ConfirmTyped>
  );
}
