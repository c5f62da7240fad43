// The Use model tab: the model's hosting status (live), Start with inference units, Stop with a typed
// `stop`, "Try an image", and ready-made API code.

import { useCallback, useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { call } from "../api";
import type { ProjectVersionDescription } from "../types";
import { Alert, Button, ConfirmTyped, ErrorAlert, Field, Modal, StatusBadge, useFlash } from "../ui/components";
import { ApiCode } from "./ApiCode";
import { TryImage } from "./TryImage";
import "./model.css";

const STARTABLE = new Set(["TRAINING_COMPLETED", "STOPPED", "COPYING_COMPLETED", "FAILED"]);
const STATUS_TEXT: Record<string, string> = {
  STARTING: "The model is starting; it can analyze images once it is running.",
  RUNNING: "The model is running and analyzes images. Stop it when you no longer need it.",
  STOPPING: "The model is stopping.",
  STOPPED: "The model is stopped. Start it to analyze images.",
  FAILED: "Hosting the model failed. Start it again.",
  TRAINING_COMPLETED: "The model is trained and has not been started yet.",
  COPYING_COMPLETED: "The copied model has not been started yet.",
};

export function UseModelTab({ version, projectArn }: { version: ProjectVersionDescription; projectArn: string }) {
  const [starting, setStarting] = useState(false);
  const [stopping, setStopping] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const queries = useQueryClient();
  const flash = useFlash();
  const status = version.Status;
  const closeStart = useCallback(() => setStarting(false), []);
  const closeStop = useCallback(() => setStopping(false), []);
  const stop = async () => {
    setBusy(true);
    setError(null);
    try {
      await call("StopProjectVersion", { ProjectVersionArn: version.ProjectVersionArn });
      await queries.invalidateQueries({ queryKey: ["versions", projectArn] });
      flash("success", "The model is stopping.");
      setStopping(false);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <section className="panel" data-testid="hosting">
        <div className="panel-title-row">
          <h2>Model status</h2>
          <div className="page-actions">
            <Button
              variant="primary"
              disabled={!STARTABLE.has(status)}
              onClick={() => setStarting(true)}
              data-testid="start-model"
            >
              Start
            </Button>
            <Button
              disabled={status !== "RUNNING"}
              onClick={() => {
                setError(null);
                setStopping(true);
              }}
              data-testid="stop-model"
            >
              Stop
            </Button>
          </div>
        </div>
        <p className="hosting-status">
          <StatusBadge status={status} /> <span data-testid="hosting-text">{STATUS_TEXT[status] ?? "The model cannot be started in this state."}</span>
        </p>
        {status === "FAILED" && version.StatusMessage && <Alert kind="error">{version.StatusMessage}</Alert>}
        {version.MinInferenceUnits !== undefined && (
          <p className="muted">
            Inference units: {version.MinInferenceUnits}
            {version.MaxInferenceUnits ? ` – ${version.MaxInferenceUnits} (auto-scaling)` : ""}. Hosting is billed per
            inference unit while the model runs.
          </p>
        )}
      </section>
      <TryImage version={version} />
      <ApiCode version={version} projectArn={projectArn} />
      {starting && <StartDialog version={version} projectArn={projectArn} onClose={closeStart} />}
      {stopping && (
        <ConfirmTyped
          title="Stop the model?"
          word="stop"
          action="Stop model"
          onConfirm={stop}
          onClose={closeStop}
          busy={busy}
          error={error}
        >
          <p>The model stops analyzing images and hosting stops. You can start it again at any time.</p>
        </ConfirmTyped>
      )}
    </>
  );
}

function unitsProblem(text: string, low: number, what: string): string | undefined {
  if (!/^\d+$/.test(text)) return `Enter a whole number of ${what}.`;
  return Number(text) >= low ? undefined : `At least ${low}.`;
}

function StartDialog({ version, projectArn, onClose }: { version: ProjectVersionDescription; projectArn: string; onClose: () => void }) {
  const [min, setMin] = useState(String(version.MinInferenceUnits ?? 1));
  const [scale, setScale] = useState(Boolean(version.MaxInferenceUnits));
  const [max, setMax] = useState(String(version.MaxInferenceUnits ?? Math.max(2, version.MinInferenceUnits ?? 1)));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const queries = useQueryClient();
  const flash = useFlash();
  const minProblem = unitsProblem(min, 1, "inference units");
  const maxProblem = scale ? unitsProblem(max, minProblem ? 1 : Number(min), "inference units") : undefined;
  const start = async () => {
    setBusy(true);
    setError(null);
    try {
      await call("StartProjectVersion", {
        ProjectVersionArn: version.ProjectVersionArn,
        MinInferenceUnits: Number(min),
        ...(scale ? { MaxInferenceUnits: Number(max) } : {}),
      });
      await queries.invalidateQueries({ queryKey: ["versions", projectArn] });
      flash("success", "The model is starting.");
      onClose();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal
      title="Start the model"
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" busy={busy} disabled={Boolean(minProblem || maxProblem)} onClick={start} data-testid="start-confirm">
            Start
          </Button>
        </>
      }
    >
      <p>
        An inference unit is the capacity that serves DetectCustomLabels; more units serve more images per second. Hosting
        is billed per unit while the model runs.
      </p>
      <Field label="Inference units" error={minProblem} hint="At least 1.">
        <input type="number" min={1} step={1} value={min} onChange={(event) => setMin(event.target.value)} data-testid="min-units" />
      </Field>
      <label className="checkbox">
        <input type="checkbox" checked={scale} onChange={(event) => setScale(event.target.checked)} data-testid="auto-scale" />
        Auto-scale up to a maximum number of inference units
      </label>
      {scale && (
        <Field label="Maximum inference units" error={maxProblem} hint="At least the number above.">
          <input type="number" min={1} step={1} value={max} onChange={(event) => setMax(event.target.value)} data-testid="max-units" />
        </Field>
      )}
      <ErrorAlert error={error} />
    </Modal>
  );
}
