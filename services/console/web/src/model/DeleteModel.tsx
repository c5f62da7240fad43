// Delete model on the model page: typed `delete`, not while the model trains, runs or changes state.

import { useCallback, useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router";
import { call } from "../api";
import { versionBusy } from "../hooks";
import type { ProjectVersionDescription } from "../types";
import { versionName } from "../types";
import { Button, ConfirmTyped, useFlash } from "../ui/components";

export function DeleteModelButton({
  version,
  projectArn,
  projectPath,
}: {
  version: ProjectVersionDescription;
  projectArn: string;
  projectPath: string;
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const queries = useQueryClient();
  const navigate = useNavigate();
  const flash = useFlash();
  const name = versionName(version.ProjectVersionArn);
  const close = useCallback(() => setOpen(false), []);
  const locked = versionBusy(version.Status) || version.Status === "RUNNING";
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await call("DeleteProjectVersion", { ProjectVersionArn: version.ProjectVersionArn });
      flash("success", `Model ${name} is being deleted.`);
      await queries.invalidateQueries({ queryKey: ["versions", projectArn] });
      navigate(projectPath);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <>
      <Button
        disabled={locked}
        title={locked ? "Not while the model trains, runs or changes state" : undefined}
        onClick={() => {
          setError(null);
          setOpen(true);
        }}
        data-testid="delete-model"
      >
        Delete model
      </Button>
      {open && (
        <ConfirmTyped
          title={`Delete model ${name}?`}
          word="delete"
          action="Delete model"
          onConfirm={remove}
          onClose={close}
          busy={busy}
          error={error}
        >
          <p>The model and its evaluation are deleted; this cannot be undone.</p>
        </ConfirmTyped>
      )}
    </>
  );
}
