// The bounding-box editor (Annotorious): the selected images one at a time, scaled to fit, boxes
// kept in the image's natural pixels (Annotorious's viewBox is the natural size).

import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { createImageAnnotator, ShapeType } from "@annotorious/annotorious";
import type { DrawingStyle, ImageAnnotation, ImageAnnotator, RectangleGeometry } from "@annotorious/annotorious";
import type { CSSProperties } from "react";
import "@annotorious/annotorious/annotorious.css";
import { ApiError, imageUrl } from "../api";
import { Alert, Button, ErrorAlert, Spinner } from "../ui/components";
import { clampBox, fileName, minBoxSide } from "./entries";
import type { Box, Draft } from "./entries";
import { labelColor } from "./labelColors";
import "./dataset.css";

interface LoadedImage {
  url: string;
  width: number;
  height: number;
}

interface ShownBox {
  id: string;
  box: Box;
}

const TYPING = new Set(["INPUT", "TEXTAREA", "SELECT"]);

function typing(event: KeyboardEvent): boolean {
  const target = event.target as HTMLElement | null;
  return Boolean(target && (TYPING.has(target.tagName) || target.isContentEditable));
}

function selector(box: Box) {
  return {
    type: ShapeType.RECTANGLE,
    geometry: {
      x: box.left,
      y: box.top,
      w: box.width,
      h: box.height,
      rot: 0,
      bounds: { minX: box.left, minY: box.top, maxX: box.left + box.width, maxY: box.top + box.height },
    },
  };
}

/** The axis-aligned box of an annotation (a rotated one is replaced by its bounding box). */
function rawBox(annotation: ImageAnnotation, label: string): Box {
  const g = annotation.target.selector.geometry as RectangleGeometry;
  const rot = g.rot ?? 0;
  if (!rot) return { label, left: g.x, top: g.y, width: g.w, height: g.h };
  const cx = g.x + g.w / 2;
  const cy = g.y + g.h / 2;
  const dx = Math.abs((g.w / 2) * Math.cos(rot)) + Math.abs((g.h / 2) * Math.sin(rot));
  const dy = Math.abs((g.w / 2) * Math.sin(rot)) + Math.abs((g.h / 2) * Math.cos(rot));
  return { label, left: cx - dx, top: cy - dy, width: 2 * dx, height: 2 * dy };
}

function differs(a: Box, b: Box): boolean {
  return (
    Math.abs(a.left - b.left) > 1e-6 ||
    Math.abs(a.top - b.top) > 1e-6 ||
    Math.abs(a.width - b.width) > 1e-6 ||
    Math.abs(a.height - b.height) > 1e-6
  );
}

/** Fetches the full image with its size as the dataset service measures it (X-Image-Width/Height). */
function useFullImage(dataset: string, ref: string) {
  const [image, setImage] = useState<LoadedImage | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const abort = new AbortController();
    let url = "";
    (async () => {
      const response = await fetch(imageUrl({ dataset, ref }, 0), { credentials: "same-origin", signal: abort.signal });
      if (!response.ok) {
        let type = `HTTP${response.status}`;
        let message = response.statusText || "The image could not be loaded";
        try {
          const body = await response.json();
          type = body.__type ?? type;
          message = body.message ?? message;
        } catch {
          // not JSON
        }
        throw new ApiError(type, message, response.status);
      }
      const width = Number(response.headers.get("x-image-width"));
      const height = Number(response.headers.get("x-image-height"));
      url = URL.createObjectURL(await response.blob());
      if (!abort.signal.aborted) setImage({ url, width, height });
    })().catch((err) => {
      if (!abort.signal.aborted) setError(err);
    });
    return () => {
      abort.abort();
      if (url) URL.revokeObjectURL(url);
    };
  }, [dataset, ref]);
  return { image, error };
}

export function BoxEditor({
  dataset,
  refs,
  draftOf,
  labels,
  onBoxes,
  onClose,
  onManageLabels,
  paused,
}: {
  dataset: string;
  refs: string[];
  draftOf: (ref: string) => Draft;
  labels: string[];
  onBoxes: (ref: string, boxes: Box[], size: [number, number]) => void;
  onClose: () => void;
  onManageLabels: () => void;
  paused: boolean;
}) {
  const [index, setIndex] = useState(0);
  const [current, setCurrent] = useState(labels[0] ?? "");
  useEffect(() => {
    if (!labels.includes(current)) setCurrent(labels[0] ?? "");
  }, [labels, current]);
  // The page behind does not scroll while the editor covers it.
  useEffect(() => {
    const before = document.body.style.overflow;
    document.body.style.overflow = "hidden";
    return () => {
      document.body.style.overflow = before;
    };
  }, []);
  const ref = refs[index];
  const last = index >= refs.length - 1;
  const next = useCallback(() => (last ? onClose() : setIndex((i) => i + 1)), [last, onClose]);
  const previous = useCallback(() => setIndex((i) => Math.max(0, i - 1)), []);
  return (
    <div className="ds-box-editor" role="dialog" aria-modal="true" aria-label="Draw bounding boxes" data-testid="box-editor">
      <header className="ds-box-editor-header">
        <h2>Draw bounding boxes</h2>
        <span className="ds-box-editor-position" data-testid="box-editor-position">
          Image {index + 1} of {refs.length}
        </span>
        <span className="ds-box-editor-name" title={ref}>
          {fileName(ref)}
        </span>
        <div className="ds-box-editor-actions">
          <Button onClick={previous} disabled={index === 0} data-testid="box-previous">
            ‹ Previous
          </Button>
          <Button onClick={next} disabled={last} data-testid="box-next">
            Next ›
          </Button>
          <Button variant="primary" onClick={onClose} data-testid="box-done">
            Done
          </Button>
        </div>
      </header>
      <ImageBoxes
        key={ref}
        dataset={dataset}
        imageRef={ref}
        draft={draftOf(ref)}
        labels={labels}
        current={current}
        setCurrent={setCurrent}
        onBoxes={onBoxes}
        onNext={next}
        onPrevious={previous}
        onDone={onClose}
        onManageLabels={onManageLabels}
        paused={paused}
      />
    </div>
  );
}

function ImageBoxes({
  dataset,
  imageRef,
  draft,
  labels,
  current,
  setCurrent,
  onBoxes,
  onNext,
  onPrevious,
  onDone,
  onManageLabels,
  paused,
}: {
  dataset: string;
  imageRef: string;
  draft: Draft;
  labels: string[];
  current: string;
  setCurrent: (label: string) => void;
  onBoxes: (ref: string, boxes: Box[], size: [number, number]) => void;
  onNext: () => void;
  onPrevious: () => void;
  onDone: () => void;
  onManageLabels: () => void;
  paused: boolean;
}) {
  const { image, error } = useFullImage(dataset, imageRef);
  const stage = useRef<HTMLDivElement>(null);
  const host = useRef<HTMLDivElement>(null);
  const annotator = useRef<ImageAnnotator | null>(null);
  const labelOf = useRef(new Map<string, string>());
  const latest = useRef({ current, labels, onBoxes, draft });
  latest.current = { current, labels, onBoxes, draft };
  const [boxes, setBoxes] = useState<ShownBox[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [hint, setHint] = useState<string | null>(null);
  const [display, setDisplay] = useState<{ width: number; height: number } | null>(null);

  const colorOf = useCallback((label: string) => labelColor(label, latest.current.labels), []);
  const restyle = useCallback(() => {
    annotator.current?.setStyle((annotation: ImageAnnotation, state?: { selected?: boolean }): DrawingStyle => {
      const color = colorOf(labelOf.current.get(annotation.id) ?? latest.current.current);
      return { stroke: color, strokeWidth: state?.selected ? 3 : 2, fill: color, fillOpacity: state?.selected ? 0.22 : 0.1 };
    });
  }, [colorOf]);

  /** Reads the boxes back from Annotorious (clamped into the image) and reports them. */
  const emit = useCallback(() => {
    const anno = annotator.current;
    if (!anno || !image) return;
    const shown = anno.getAnnotations().map((annotation) => ({
      id: annotation.id,
      box: clampBox(rawBox(annotation, labelOf.current.get(annotation.id) ?? latest.current.current), image.width, image.height),
    }));
    setBoxes(shown);
    latest.current.onBoxes(
      imageRef,
      shown.map((s) => s.box),
      [image.width, image.height],
    );
  }, [image, imageRef]);

  // Scale the image to fit the stage; boxes stay in natural pixels whatever the scale.
  useLayoutEffect(() => {
    const element = stage.current;
    if (!element || !image) return;
    const fit = () => {
      // Small images are enlarged (up to 3×) so that boxes can be drawn precisely.
      const scale = Math.min(3, (element.clientWidth - 24) / image.width, (element.clientHeight - 24) / image.height);
      setDisplay({ width: Math.max(1, Math.floor(image.width * scale)), height: Math.max(1, Math.floor(image.height * scale)) });
    };
    fit();
    const observer = new ResizeObserver(fit);
    observer.observe(element);
    return () => observer.disconnect();
  }, [image]);

  // Annotorious owns the <img> and its wrapper; React only owns `host`, which it leaves empty.
  useEffect(() => {
    const parent = host.current;
    if (!parent || !image) return;
    const img = document.createElement("img");
    img.alt = fileName(imageRef);
    img.className = "ds-box-image";
    img.draggable = false;
    img.src = image.url;
    parent.appendChild(img);
    let anno: ImageAnnotator | null = null;
    let cancelled = false;
    // Boxes when a gesture starts. After it, a changed box that kept its size was moved: moved past
    // an edge, it is moved back inside; a box resized or drawn past an edge is cut at it. Boxes the
    // gesture did not touch stay as they are.
    let before = new Map<string, Box>();
    const onPointerDown = () => {
      before = new Map((anno?.getAnnotations() ?? []).map((a) => [a.id, rawBox(a, "")]));
    };
    const onPointerUp = () => setTimeout(keepInside, 0);
    const keepInside = () => {
      if (!anno) return;
      const minimum = minBoxSide(image.width, image.height);
      for (const annotation of anno.getAnnotations()) {
        const raw = rawBox(annotation, "");
        const start = before.get(annotation.id);
        if (start && !differs(start, raw)) continue;
        const moved = start && Math.abs(start.width - raw.width) < 1e-6 && Math.abs(start.height - raw.height) < 1e-6;
        const inside =
          moved && raw.width <= image.width && raw.height <= image.height
            ? {
                ...raw,
                left: Math.min(Math.max(0, raw.left), image.width - raw.width),
                top: Math.min(Math.max(0, raw.top), image.height - raw.height),
              }
            : clampBox(raw, image.width, image.height);
        if (Math.round(inside.width) <= minimum || Math.round(inside.height) <= minimum) {
          setHint("A box left outside the image was removed.");
          anno.removeAnnotation(annotation.id);
          continue;
        }
        if (!differs(raw, inside) && !(annotation.target.selector.geometry as RectangleGeometry).rot) continue;
        anno.updateAnnotation({ ...annotation, target: { ...annotation.target, selector: selector(inside) } });
      }
    };
    img.decode().catch(() => undefined).then(() => {
      if (cancelled) return;
      anno = createImageAnnotator(img, {
        drawingEnabled: latest.current.labels.length > 0,
        drawingMode: "drag",
      });
      anno.setDrawingTool("rectangle");
      annotator.current = anno;
      labelOf.current.clear();
      const initial = latest.current.draft.boxes.map((box, i) => {
        const id = `box-${i}`;
        labelOf.current.set(id, box.label);
        return { id, bodies: [], target: { annotation: id, selector: selector(box) } } as ImageAnnotation;
      });
      anno.setAnnotations(initial, true);
      restyle();
      setBoxes(
        latest.current.draft.boxes.map((box, i) => ({ id: `box-${i}`, box: clampBox(box, image.width, image.height) })),
      );
      anno.state.store.observe((event) => {
        if (String(event.origin) !== "LOCAL") return;
        const minimum = minBoxSide(image.width, image.height);
        for (const created of event.changes.created ?? []) {
          const box = clampBox(rawBox(created, ""), image.width, image.height);
          if (Math.round(box.width) <= minimum || Math.round(box.height) <= minimum) {
            setHint(`That box is too small: boxes need more than ${Math.ceil(minimum)} px on each side.`);
            // After Annotorious has finished creating (and selecting) it.
            setTimeout(() => anno?.removeAnnotation(created.id), 0);
            continue;
          }
          labelOf.current.set(created.id, latest.current.current);
          setHint(null);
        }
        emit();
      });
      anno.on("selectionChanged", (annotations: ImageAnnotation[]) => setSelected(annotations[0]?.id ?? null));
      anno.element.addEventListener("pointerdown", onPointerDown, true);
      anno.element.addEventListener("pointerup", onPointerUp, true);
    });
    return () => {
      cancelled = true;
      anno?.element.removeEventListener("pointerdown", onPointerDown, true);
      anno?.element.removeEventListener("pointerup", onPointerUp, true);
      anno?.destroy();
      annotator.current = null;
      img.remove();
    };
  }, [image, imageRef, emit, restyle]);

  useEffect(() => {
    annotator.current?.setDrawingEnabled(labels.length > 0);
    restyle();
  }, [labels, current, restyle]);

  const removeSelected = useCallback(() => {
    const anno = annotator.current;
    if (!anno) return;
    for (const annotation of anno.getSelected()) anno.removeAnnotation(annotation.id);
    setSelected(null);
  }, []);

  const relabel = useCallback(
    (id: string, label: string) => {
      labelOf.current.set(id, label);
      restyle();
      emit();
    },
    [emit, restyle],
  );

  const pick = useCallback(
    (label: string) => {
      setCurrent(label);
      const chosen = annotator.current?.getSelected()[0];
      if (chosen) relabel(chosen.id, label);
    },
    [relabel, setCurrent],
  );

  useEffect(() => {
    if (paused) return;
    const onKey = (event: KeyboardEvent) => {
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
      const key = event.key;
      if (key === "Delete" || key === "Backspace") {
        event.preventDefault();
        removeSelected();
      } else if (key === "n" || key === "N" || key === "ArrowRight") {
        event.preventDefault();
        onNext();
      } else if (key === "ArrowLeft" || key === "p" || key === "P") {
        event.preventDefault();
        onPrevious();
      } else if (key === "d" || key === "D") {
        event.preventDefault();
        onDone();
      } else if (/^[1-9]$/.test(key)) {
        const label = latest.current.labels[Number(key) - 1];
        if (label !== undefined) {
          event.preventDefault();
          pick(label);
        }
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [paused, removeSelected, onNext, onPrevious, onDone, pick]);

  const size = image ? { width: image.width, height: image.height } : null;
  return (
    <div className="ds-box-editor-body">
      <div className="ds-box-stage" ref={stage}>
        {error ? (
          <ErrorAlert error={error} title="The image could not be loaded" />
        ) : !image ? (
          <Spinner label="Loading the image" />
        ) : (
          <div
            className="ds-box-canvas"
            style={display ? ({ "--box-w": `${display.width}px`, "--box-h": `${display.height}px` } as CSSProperties) : undefined}
            data-testid="box-canvas"
            data-natural-width={image.width}
            data-natural-height={image.height}
          >
            <div ref={host} className="ds-box-host" />
            <div className="ds-box-tags" aria-hidden="true">
              {size &&
                boxes.map(({ id, box }) => (
                  <span
                    key={id}
                    className="ds-box-tag"
                    style={{
                      left: `${(box.left / size.width) * 100}%`,
                      top: `${(box.top / size.height) * 100}%`,
                      background: colorOf(box.label),
                    }}
                  >
                    {box.label}
                  </span>
                ))}
            </div>
          </div>
        )}
      </div>
      <aside className="ds-box-side">
        <section>
          <h3>Labels</h3>
          {labels.length === 0 ? (
            <Alert kind="warning" title="Add a label first">
              Boxes need a label. <Button variant="link" onClick={onManageLabels}>Manage labels</Button>
            </Alert>
          ) : (
            <ol className="ds-box-labels" data-testid="box-labels">
              {labels.map((label, i) => (
                <li key={label}>
                  <button
                    className={label === current ? "ds-box-label ds-box-label-current" : "ds-box-label"}
                    aria-pressed={label === current}
                    onClick={() => pick(label)}
                    data-testid="box-label"
                  >
                    <span className="ds-swatch" style={{ background: colorOf(label) }} />
                    {i < 9 && <kbd>{i + 1}</kbd>}
                    <span className="ds-box-label-name">{label}</span>
                  </button>
                </li>
              ))}
            </ol>
          )}
          <Button variant="link" onClick={onManageLabels} data-testid="box-manage-labels">
            Manage labels
          </Button>
        </section>
        <section>
          <h3>Boxes ({boxes.length})</h3>
          {hint && (
            <Alert kind="warning" onDismiss={() => setHint(null)}>
              {hint}
            </Alert>
          )}
          {boxes.length === 0 ? (
            <p className="muted">No boxes on this image.</p>
          ) : (
            <ul className="ds-box-list" data-testid="box-list">
              {boxes.map(({ id, box }) => (
                <li key={id} className={id === selected ? "ds-box-row ds-box-row-selected" : "ds-box-row"} data-testid="box-row">
                  <span className="ds-swatch" style={{ background: colorOf(box.label) }} />
                  <select
                    value={box.label}
                    onChange={(event) => relabel(id, event.target.value)}
                    aria-label="Label of this box"
                  >
                    {[...new Set([...labels, box.label])].map((label) => (
                      <option key={label} value={label}>
                        {label}
                      </option>
                    ))}
                  </select>
                  <button className="ds-box-coords" onClick={() => annotator.current?.setSelected(id, true)} data-testid="box-coords">
                    {Math.round(box.left)}, {Math.round(box.top)} · {Math.round(box.width)}×{Math.round(box.height)}
                  </button>
                  <button
                    className="ds-box-remove"
                    aria-label="Delete this box"
                    onClick={() => {
                      annotator.current?.removeAnnotation(id);
                    }}
                  >
                    ×
                  </button>
                </li>
              ))}
            </ul>
          )}
        </section>
        <section className="ds-box-tips">
          <h3>Tips</h3>
          <ul>
            <li>Drag on the image to draw a box with the current label.</li>
            <li>Click a box to select it; drag it or its handles to move or resize it.</li>
            <li>
              <kbd>Delete</kbd> removes the selected box; <kbd>1</kbd>–<kbd>9</kbd> pick a label (and relabel the selected box).
            </li>
            <li>
              <kbd>N</kbd> or <kbd>→</kbd> next image, <kbd>←</kbd> previous, <kbd>D</kbd> done. <kbd>Ctrl</kbd>+<kbd>Z</kbd> undoes.
            </li>
          </ul>
          <p className="muted">
            {image && `Image ${image.width}×${image.height} px; boxes are stored in these pixels.`}
          </p>
        </section>
      </aside>
    </div>
  );
}
