// The gallery: server-made thumbnails (lazy), each image's labels, boxes and error codes under it,
// and, while labeling, selection by click, ctrl/cmd-click and shift-click (otherwise a click opens it).

import { memo } from "react";
import type { MouseEvent } from "react";
import { imageUrl } from "../api";
import { fileName, labelUse } from "./entries";
import type { Entry } from "./entries";
import { labelColor } from "./labelColors";
import "./dataset.css";

export interface SelectGesture {
  range: boolean;
  toggle: boolean;
}

function gesture(event: MouseEvent): SelectGesture {
  return { range: event.shiftKey, toggle: event.ctrlKey || event.metaKey };
}

const Tile = memo(function Tile({
  dataset,
  entry,
  index,
  edited,
  selected,
  labeling,
  labels,
  onSelect,
  onOpen,
}: {
  dataset: string;
  entry: Entry;
  index: number;
  edited: boolean;
  selected: boolean;
  labeling: boolean;
  labels: string[];
  onSelect: (index: number, how: SelectGesture) => void;
  onOpen: (index: number) => void;
}) {
  const use = labelUse(entry);
  const codes = [...new Set(entry.errors.map((e) => e.code))];
  const classes = ["ds-tile", selected && "ds-tile-selected", labeling && "ds-tile-selectable", edited && "ds-tile-edited"];
  return (
    <li
      className={classes.filter(Boolean).join(" ")}
      data-testid="tile"
      data-ref={entry.ref}
      aria-selected={labeling ? selected : undefined}
      role={labeling ? "option" : undefined}
      tabIndex={0}
      onClick={(event) => (labeling ? onSelect(index, gesture(event)) : onOpen(index))}
      onKeyDown={(event) => {
        if (event.key !== " " && event.key !== "Enter") return;
        event.preventDefault();
        if (labeling) onSelect(index, { range: event.shiftKey, toggle: true });
        else onOpen(index);
      }}
    >
      <div className="ds-tile-thumb">
        <img src={imageUrl({ dataset, ref: entry.ref }, 256)} alt={fileName(entry.ref)} loading="lazy" decoding="async" />
        {entry.size && entry.boxes.length > 0 && (
          <svg className="ds-tile-boxes" viewBox={`0 0 ${entry.size[0]} ${entry.size[1]}`} preserveAspectRatio="xMidYMid meet" aria-hidden="true">
            {entry.boxes.map((box, i) => (
              <rect
                key={i}
                x={box.left}
                y={box.top}
                width={box.width}
                height={box.height}
                stroke={labelColor(box.label, labels)}
                vectorEffect="non-scaling-stroke"
              />
            ))}
          </svg>
        )}
        {labeling && (
          <input
            type="checkbox"
            className="ds-tile-check"
            checked={selected}
            aria-label={`Select ${fileName(entry.ref)}`}
            readOnly
            onClick={(event) => {
              event.stopPropagation();
              onSelect(index, { range: event.shiftKey, toggle: true });
            }}
          />
        )}
        {edited && (
          <span className="ds-tile-edited-mark" title="Changed, not saved yet">
            edited
          </span>
        )}
      </div>
      <div className="ds-tile-name" title={entry.ref}>
        {fileName(entry.ref)}
      </div>
      <ul className="ds-chips ds-tile-labels" data-testid="tile-labels">
        {use.length === 0 && <li className="muted ds-tile-unlabeled">unlabeled</li>}
        {use.map(({ name, boxes }) => (
          <li key={name} className="ds-chip" data-testid="tile-label">
            <span className="ds-swatch" style={{ background: labelColor(name, labels) }} />
            <span className="ds-chip-text">{name}</span>
            {boxes > 0 && <span className="ds-chip-count" title={`${boxes} bounding box${boxes === 1 ? "" : "es"}`}>▭{boxes}</span>}
          </li>
        ))}
      </ul>
      {codes.length > 0 && (
        <ul className="ds-tile-errors" data-testid="tile-errors">
          {codes.map((code) => (
            <li key={code} title={entry.errors.find((e) => e.code === code)?.message}>
              {code}
            </li>
          ))}
        </ul>
      )}
    </li>
  );
});

export function Gallery({
  dataset,
  entries,
  edited,
  selected,
  labeling,
  labels,
  onSelect,
  onOpen,
}: {
  dataset: string;
  entries: Entry[];
  edited: Set<string>;
  selected: Set<string>;
  labeling: boolean;
  labels: string[];
  onSelect: (index: number, how: SelectGesture) => void;
  onOpen: (index: number) => void;
}) {
  return (
    <ul
      className="ds-gallery"
      data-testid="gallery"
      role={labeling ? "listbox" : undefined}
      aria-multiselectable={labeling ? true : undefined}
      aria-label="Images"
    >
      {entries.map((entry, index) => (
        <Tile
          key={entry.ref}
          dataset={dataset}
          entry={entry}
          index={index}
          edited={edited.has(entry.ref)}
          selected={selected.has(entry.ref)}
          labeling={labeling}
          labels={labels}
          onSelect={onSelect}
          onOpen={onOpen}
        />
      ))}
    </ul>
  );
}
