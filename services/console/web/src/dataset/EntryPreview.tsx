// One image of the gallery, larger: its boxes drawn over a 1024 px copy, its labels and its errors
// with their messages.

import { imageUrl } from "../api";
import { Modal } from "../ui/components";
import { fileName, labelUse } from "./entries";
import type { Entry } from "./entries";
import { labelColor } from "./labelColors";
import "./dataset.css";

export function EntryPreview({ dataset, entry, labels, onClose }: { dataset: string; entry: Entry; labels: string[]; onClose: () => void }) {
  const use = labelUse(entry);
  return (
    <Modal title={fileName(entry.ref)} onClose={onClose} wide>
      <div className="ds-preview" data-testid="entry-preview">
        <div className="ds-preview-image">
          <img src={imageUrl({ dataset, ref: entry.ref }, 1024)} alt={fileName(entry.ref)} />
          {entry.size && entry.boxes.length > 0 && (
            <svg className="ds-tile-boxes" viewBox={`0 0 ${entry.size[0]} ${entry.size[1]}`} preserveAspectRatio="xMidYMid meet" aria-hidden="true">
              {entry.boxes.map((box, i) => (
                <rect key={i} x={box.left} y={box.top} width={box.width} height={box.height} stroke={labelColor(box.label, labels)} vectorEffect="non-scaling-stroke" />
              ))}
            </svg>
          )}
        </div>
        <div className="ds-preview-side">
          <p className="ds-file-path">{entry.ref}</p>
          {entry.size && (
            <p className="muted">
              {entry.size[0]}×{entry.size[1]} px
            </p>
          )}
          <h3>Labels</h3>
          {use.length === 0 ? (
            <p className="muted">Unlabeled.</p>
          ) : (
            <ul className="ds-chips">
              {use.map(({ name, boxes }) => (
                <li key={name} className="ds-chip">
                  <span className="ds-swatch" style={{ background: labelColor(name, labels) }} />
                  <span className="ds-chip-text">{name}</span>
                  {boxes > 0 && <span className="ds-chip-count">▭{boxes}</span>}
                </li>
              ))}
            </ul>
          )}
          {entry.errors.length > 0 && (
            <>
              <h3>Errors</h3>
              <ul className="plain-list" data-testid="preview-errors">
                {entry.errors.map((error, i) => (
                  <li key={i}>
                    <code className="ds-status-code">{error.code}</code> {error.message}
                  </li>
                ))}
              </ul>
            </>
          )}
        </div>
      </div>
    </Modal>
  );
}
