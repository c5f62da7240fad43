// "Try an image": a photo from this computer sent to DetectCustomLabels (MinConfidence 0), its labels
// listed with confidences and its boxes drawn over it, filtered in the page by a confidence threshold
// (each label's assumed threshold from the evaluation by default, or one for all labels).

import { useEffect, useMemo, useRef, useState } from "react";
import { ApiError, call } from "../api";
import type { CustomLabel, ProjectVersionDescription } from "../types";
import { Button, ErrorAlert, Spinner } from "../ui/components";
import { BoxOverlay } from "./BoxOverlay";
import type { OverlayBox } from "./BoxOverlay";
import { useEvaluation } from "./queries";
import { thresholdsOf } from "./types";
import "./model.css";

/** DetectCustomLabels takes at most 4 MB of image bytes (services/serving/config.py). */
export const MAX_IMAGE_BYTES = 4 * 1024 * 1024;
// Past this many boxes their name tags would cover the image; the list beside it names them.
const MAX_LABELLED_BOXES = 25;
const PALETTE = ["#0972d3", "#d45b07", "#037f0c", "#9469d6", "#c33d69", "#2ea597", "#8d6605", "#e07941", "#688ae8", "#5f6b7a"];

function readBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).slice(String(reader.result).indexOf(",") + 1));
    reader.onerror = () => reject(new Error("The file could not be read."));
    reader.readAsDataURL(file);
  });
}

export function TryImage({ version }: { version: ProjectVersionDescription }) {
  const evaluation = useEvaluation(version);
  const thresholds = useMemo(() => thresholdsOf(evaluation.data?.Summary), [evaluation.data]);
  const labelOrder = evaluation.data?.Summary?.EvaluationDetails?.Labels ?? [];
  const running = version.Status === "RUNNING";
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [labels, setLabels] = useState<CustomLabel[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);
  const [mode, setMode] = useState<"assumed" | "custom">("assumed");
  const [minimum, setMinimum] = useState(50);
  const input = useRef<HTMLInputElement>(null);
  const useAssumed = mode === "assumed" && thresholds.size > 0;

  useEffect(() => () => void (preview && URL.revokeObjectURL(preview)), [preview]);

  const analyze = async (picked: File) => {
    setError(null);
    setLabels(null);
    setFile(picked);
    setPreview(URL.createObjectURL(picked));
    if (picked.size > MAX_IMAGE_BYTES) {
      setError(
        new ApiError(
          "ImageTooLargeException",
          `The image is ${(picked.size / 1048576).toFixed(1)} MB; DetectCustomLabels takes at most 4 MB of image bytes.`,
          400,
        ),
      );
      return;
    }
    setBusy(true);
    try {
      const bytes = await readBase64(picked);
      const answer = await call<{ CustomLabels: CustomLabel[] }>("DetectCustomLabels", {
        ProjectVersionArn: version.ProjectVersionArn,
        Image: { Bytes: bytes },
        MinConfidence: 0,
      });
      setLabels(answer.CustomLabels ?? []);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const cutOff = (name: string) => (useAssumed ? 100 * (thresholds.get(name) ?? 0.5) : minimum);
  const visible = (labels ?? []).filter((l) => l.Confidence >= cutOff(l.Name));
  const hidden = (labels?.length ?? 0) - visible.length;
  const colourOf = (name: string) => {
    const index = labelOrder.indexOf(name);
    return PALETTE[(index >= 0 ? index : name.length) % PALETTE.length];
  };
  const boxes: OverlayBox[] = visible
    .filter((l) => l.Geometry?.BoundingBox)
    .map((l) => ({ box: l.Geometry!.BoundingBox, label: `${l.Name} ${l.Confidence.toFixed(0)}%`, tone: "detected", color: colourOf(l.Name) }));

  return (
    <section className="panel" data-testid="try-image">
      <h2>Try an image</h2>
      {!running && (
        <p className="muted" data-testid="try-not-running">
          Start the model to analyze images: until it is running, DetectCustomLabels answers ResourceNotReadyException.
        </p>
      )}
      <div
        className={`drop-zone${dragging ? " drop-zone-active" : ""}${running ? "" : " drop-zone-disabled"}`}
        onDragOver={(event) => {
          event.preventDefault();
          if (running) setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(event) => {
          event.preventDefault();
          setDragging(false);
          const dropped = event.dataTransfer.files[0];
          if (running && dropped) void analyze(dropped);
        }}
      >
        <p>Drop a PNG or JPEG image here (at most 4 MB), or</p>
        <Button onClick={() => input.current?.click()} disabled={!running || busy} data-testid="try-choose">
          Choose an image
        </Button>
        <input
          ref={input}
          type="file"
          accept="image/png,image/jpeg"
          hidden
          disabled={!running}
          data-testid="try-file"
          onChange={(event) => {
            const picked = event.target.files?.[0];
            event.target.value = "";
            if (picked) void analyze(picked);
          }}
        />
      </div>
      <ErrorAlert error={error} />
      {busy && <Spinner label="Analyzing the image" />}
      {file && preview && labels && (
        <div className="try-result">
          <div className="try-image">
            <BoxOverlay key={preview} src={preview} alt={file.name} boxes={boxes} lazy={false} showLabels={boxes.length <= MAX_LABELLED_BOXES} testId="try-overlay" />
          </div>
          <div className="try-labels">
            <ThresholdControl
              hasAssumed={thresholds.size > 0}
              mode={useAssumed ? "assumed" : "custom"}
              minimum={minimum}
              onMode={setMode}
              onMinimum={setMinimum}
            />
            {visible.length === 0 ? (
              <p className="muted" data-testid="no-labels">
                No label at or above the threshold.
              </p>
            ) : (
              <ul className="detected-list" data-testid="detected-labels">
                {visible.map((l, index) => (
                  <li key={index} data-testid="detected-label" data-label={l.Name}>
                    <span className="detected-swatch" style={{ background: colourOf(l.Name) }} aria-hidden="true" />
                    <span className="detected-name">{l.Name}</span>
                    <span className="detected-bar" aria-hidden="true">
                      <span style={{ width: `${Math.min(100, l.Confidence)}%`, background: colourOf(l.Name) }} />
                    </span>
                    <span className="detected-confidence">{l.Confidence.toFixed(1)}%</span>
                  </li>
                ))}
              </ul>
            )}
            {hidden > 0 && (
              <p className="muted" data-testid="hidden-labels">
                {hidden} {hidden === 1 ? "result" : "results"} below the threshold hidden.
              </p>
            )}
          </div>
        </div>
      )}
    </section>
  );
}

function ThresholdControl({
  hasAssumed,
  mode,
  minimum,
  onMode,
  onMinimum,
}: {
  hasAssumed: boolean;
  mode: "assumed" | "custom";
  minimum: number;
  onMode: (mode: "assumed" | "custom") => void;
  onMinimum: (value: number) => void;
}) {
  return (
    <fieldset className="threshold">
      <legend>Confidence threshold</legend>
      {hasAssumed && (
        <label className="checkbox">
          <input type="radio" name="threshold-mode" checked={mode === "assumed"} onChange={() => onMode("assumed")} data-testid="threshold-assumed" />
          Each label's assumed threshold (from the evaluation)
        </label>
      )}
      <label className="checkbox">
        <input type="radio" name="threshold-mode" checked={mode === "custom"} onChange={() => onMode("custom")} data-testid="threshold-custom" />
        One threshold for every label
      </label>
      <div className={mode === "custom" ? "threshold-slider" : "threshold-slider threshold-slider-idle"}>
        <input
          type="range"
          min={0}
          max={100}
          step={1}
          value={minimum}
          onChange={(event) => {
            onMode("custom");
            onMinimum(Number(event.target.value));
          }}
          aria-label="Minimum confidence"
          data-testid="confidence-slider"
        />
        <span className="threshold-value" data-testid="confidence-value">
          {mode === "custom" ? `${minimum}%` : "per label"}
        </span>
      </div>
    </fieldset>
  );
}
