// A read-only image with boxes drawn over it: an <img> and an SVG in the image's displayed pixels.
// Boxes are ratios (0-1) of the image, as DetectCustomLabels and ListTestResults give them; labels
// are SVG <text> nodes, so a label name is only ever text.

import { useEffect, useRef, useState } from "react";
import type { Box } from "./types";
import "./model.css";

export type BoxTone = "truth" | "tp" | "fp" | "fn" | "tn" | "detected";

export interface OverlayBox {
  box: Box;
  label: string;
  tone: BoxTone;
  /** A colour of its own (detections coloured by label); the tone's colour otherwise. */
  color?: string;
}

const LABEL_HEIGHT = 16;
const CHAR_WIDTH = 6.4;

/** Where the image is drawn inside the frame (object-fit: contain centres it when the frame is capped). */
function area(frame: { w: number; h: number }, image: { w: number; h: number } | null) {
  if (!image) return { x: 0, y: 0, w: frame.w, h: frame.h };
  const scale = Math.min(frame.w / image.w, frame.h / image.h);
  const w = image.w * scale;
  const h = image.h * scale;
  return { x: (frame.w - w) / 2, y: (frame.h - h) / 2, w, h };
}

function clamp(value: number): number {
  return Math.min(1, Math.max(0, value));
}

export function BoxOverlay({
  src,
  alt,
  width,
  height,
  boxes,
  lazy = true,
  showLabels = true,
  testId,
  onError,
}: {
  src: string;
  alt: string;
  /** The image's size in pixels when known (reserves the space before it loads). */
  width?: number;
  height?: number;
  boxes: OverlayBox[];
  lazy?: boolean;
  showLabels?: boolean;
  testId?: string;
  onError?: () => void;
}) {
  const frame = useRef<HTMLDivElement>(null);
  const [shown, setShown] = useState<{ w: number; h: number } | null>(null);
  const [natural, setNatural] = useState<{ w: number; h: number } | null>(width && height ? { w: width, h: height } : null);
  useEffect(() => {
    const element = frame.current;
    if (!element) return;
    const observer = new ResizeObserver(([entry]) => {
      const { width: w, height: h } = entry.contentRect;
      setShown(w > 0 && h > 0 ? { w, h } : null);
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  const ratio = natural ? `${natural.w} / ${natural.h}` : undefined;
  const drawn = shown ? area(shown, natural) : null;
  return (
    <div className="overlay" ref={frame} style={ratio ? { aspectRatio: ratio } : undefined} data-testid={testId}>
      <img
        src={src}
        alt={alt}
        loading={lazy ? "lazy" : "eager"}
        decoding="async"
        onLoad={(event) => {
          const image = event.currentTarget;
          if (!natural && image.naturalWidth) setNatural({ w: image.naturalWidth, h: image.naturalHeight });
        }}
        onError={onError}
      />
      {drawn && shown && boxes.length > 0 && (
        <svg className="overlay-svg" viewBox={`0 0 ${shown.w} ${shown.h}`} aria-hidden="true">
          <g transform={`translate(${drawn.x} ${drawn.y})`}>
            {boxes.map((item, index) => (
              <OverlayRect key={index} item={item} w={drawn.w} h={drawn.h} showLabel={showLabels} />
            ))}
          </g>
        </svg>
      )}
    </div>
  );
}

function OverlayRect({ item, w, h, showLabel }: { item: OverlayBox; w: number; h: number; showLabel: boolean }) {
  const left = clamp(item.box.Left) * w;
  const top = clamp(item.box.Top) * h;
  const right = clamp(item.box.Left + item.box.Width) * w;
  const bottom = clamp(item.box.Top + item.box.Height) * h;
  const labelWidth = Math.min(w, item.label.length * CHAR_WIDTH + 8);
  const labelTop = top >= LABEL_HEIGHT ? top - LABEL_HEIGHT : top;
  const labelLeft = Math.min(left, Math.max(0, w - labelWidth));
  const style = item.color ? { stroke: item.color } : undefined;
  return (
    <g className={`overlay-box overlay-${item.tone}`} data-label={item.label} data-tone={item.tone}>
      <rect x={left} y={top} width={Math.max(1, right - left)} height={Math.max(1, bottom - top)} style={style} />
      {showLabel && (
        <>
          <rect
            className="overlay-tag"
            x={labelLeft}
            y={labelTop}
            width={labelWidth}
            height={LABEL_HEIGHT}
            style={item.color ? { fill: item.color } : undefined}
          />
          <text x={labelLeft + 4} y={labelTop + 12}>
            {item.label}
          </text>
        </>
      )}
    </g>
  );
}
