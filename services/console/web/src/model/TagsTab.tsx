// The Tags tab: a resource's tags (ListTagsForResource), add or overwrite one (TagResource), remove one
// (UntagResource). Keys and values are rendered as text only.

import { useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { call } from "../api";
import { Button, Empty, ErrorAlert, Field, Spinner, useFlash } from "../ui/components";
import { useTags } from "./queries";
import { MAX_TAGS, tagKeyProblem, tagValueProblem } from "./tags";
import "./model.css";

export function TagsTab({ arn }: { arn: string }) {
  const tags = useTags(arn);
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const queries = useQueryClient();
  const flash = useFlash();
  const entries = Object.entries(tags.data ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const keyProblem = key ? tagKeyProblem(key) : undefined;
  const valueProblem = tagValueProblem(value);
  const exists = key in (tags.data ?? {});
  const full = !exists && entries.length >= MAX_TAGS;
  const run = async (what: string, body: () => Promise<unknown>, done: string) => {
    setBusy(what);
    setError(null);
    try {
      await body();
      await queries.invalidateQueries({ queryKey: ["tags", arn] });
      flash("success", done);
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setBusy(null);
    }
  };
  const add = async () => {
    const ok = await run("add", () => call("TagResource", { ResourceArn: arn, Tags: { [key]: value } }), exists ? "Tag updated." : "Tag added.");
    if (ok) {
      setKey("");
      setValue("");
    }
  };
  const remove = (tagKey: string) =>
    run(`remove:${tagKey}`, () => call("UntagResource", { ResourceArn: arn, TagKeys: [tagKey] }), "Tag removed.");
  return (
    <section className="panel" data-testid="tags">
      <h2>Tags</h2>
      <p className="muted">Tags label the model version for cost allocation and access control; up to {MAX_TAGS}.</p>
      <ErrorAlert error={tags.error ?? error} onDismiss={error ? () => setError(null) : undefined} />
      {tags.isPending ? (
        <Spinner label="Loading the tags" />
      ) : entries.length === 0 ? (
        <Empty>No tags.</Empty>
      ) : (
        <table className="table tags-table" data-testid="tags-table">
          <thead>
            <tr>
              <th>Key</th>
              <th>Value</th>
              <th aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {entries.map(([tagKey, tagValue]) => (
              <tr key={tagKey} data-testid="tag-row">
                <td className="tag-text" data-testid="tag-key-cell">
                  {tagKey}
                </td>
                <td className="tag-text" data-testid="tag-value-cell">
                  {tagValue}
                </td>
                <td className="actions">
                  <Button variant="link" busy={busy === `remove:${tagKey}`} onClick={() => void remove(tagKey)} aria-label={`Remove tag ${tagKey}`}>
                    Remove
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3 className="tags-add-title">Add a tag</h3>
      <div className="form-grid tags-add">
        <Field label="Key" error={keyProblem}>
          <input value={key} onChange={(event) => setKey(event.target.value)} placeholder="key" data-testid="new-tag-key" />
        </Field>
        <Field label="Value (optional)" error={valueProblem}>
          <input value={value} onChange={(event) => setValue(event.target.value)} placeholder="value" data-testid="new-tag-value" />
        </Field>
      </div>
      {exists && !keyProblem && <p className="muted">The model already has this key: adding replaces its value.</p>}
      {full && <p className="field-error">The model already has {MAX_TAGS} tags; remove one first.</p>}
      <Button
        variant="primary"
        onClick={() => void add()}
        busy={busy === "add"}
        disabled={!key || Boolean(keyProblem || valueProblem) || full}
        data-testid="add-tag"
      >
        {exists ? "Update tag" : "Add tag"}
      </Button>
    </section>
  );
}
