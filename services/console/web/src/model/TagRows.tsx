// Key/value rows for tags (Train page), each checked as it is typed.

import { Button } from "../ui/components";
import type { TagRow, TagRowProblems } from "./tags";
import { MAX_TAGS } from "./tags";
import "./model.css";

export function TagRows({
  rows,
  problems,
  onChange,
}: {
  rows: TagRow[];
  problems: TagRowProblems[];
  onChange: (rows: TagRow[]) => void;
}) {
  const update = (index: number, change: Partial<TagRow>) =>
    onChange(rows.map((row, i) => (i === index ? { ...row, ...change } : row)));
  return (
    <div className="tag-rows" data-testid="tag-rows">
      {rows.length > 0 && (
        <div className="tag-row tag-row-head">
          <span>Key</span>
          <span>Value (optional)</span>
          <span />
        </div>
      )}
      {rows.map((row, index) => (
        <div className="tag-row" key={index}>
          <div className="tag-cell">
            <input
              value={row.key}
              onChange={(event) => update(index, { key: event.target.value })}
              placeholder="key"
              aria-label={`Tag key ${index + 1}`}
              data-testid="tag-key"
            />
            {problems[index]?.key && <span className="field-error">{problems[index].key}</span>}
          </div>
          <div className="tag-cell">
            <input
              value={row.value}
              onChange={(event) => update(index, { value: event.target.value })}
              placeholder="value"
              aria-label={`Tag value ${index + 1}`}
              data-testid="tag-value"
            />
            {problems[index]?.value && <span className="field-error">{problems[index].value}</span>}
          </div>
          <Button variant="link" onClick={() => onChange(rows.filter((_, i) => i !== index))} aria-label={`Remove tag ${index + 1}`}>
            Remove
          </Button>
        </div>
      ))}
      <Button
        onClick={() => onChange([...rows, { key: "", value: "" }])}
        disabled={rows.length >= MAX_TAGS}
        data-testid="add-tag-row"
      >
        Add tag
      </Button>
    </div>
  );
}
