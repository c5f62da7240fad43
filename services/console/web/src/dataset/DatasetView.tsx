// One dataset's gallery and labeling (filters, paging, Start labeling, Save changes / Exit); unsaved
// changes are never dropped silently: leaving, switching tabs, paging and filtering all ask first.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, call } from "../api";
import { useDataset, useUnsavedChanges } from "../hooks";
import type { DatasetLabel } from "../types";
import { Alert, Button, Empty, ErrorAlert, Pager, Spinner, useFlash } from "../ui/components";
import { AddImagesDialog } from "./AddImagesDialog";
import { BoxEditor } from "./BoxEditor";
import { DatasetStatus } from "./DatasetStatus";
import { EntryPreview } from "./EntryPreview";
import { parseEntry } from "./entries";
import type { Box } from "./entries";
import { Gallery } from "./Gallery";
import type { SelectGesture } from "./Gallery";
import { LabelPanel, NO_FILTER, ShowFilter, filterRequest } from "./LabelPanel";
import type { Filter } from "./LabelPanel";
import { LabelingToolbar } from "./LabelingToolbar";
import { LeaveDialog, discardMessage } from "./LeaveDialog";
import { ManageLabelsDialog } from "./ManageLabelsDialog";
import { effective, saveEntries, usePendingEdits } from "./pending";
import "./dataset.css";

const PAGE_SIZES = [25, 50, 100];
const BUSY = /IN_PROGRESS/;

interface EntriesPage {
  DatasetEntries: string[];
  NextToken?: string;
}

function refOf(line: string): string {
  try {
    return String(JSON.parse(line)["source-ref"] ?? "");
  } catch {
    return "";
  }
}

export function DatasetView({ arn }: { arn: string }) {
  const queries = useQueryClient();
  const flash = useFlash();
  const dataset = useDataset(arn);
  const [filter, setFilter] = useState<Filter>(NO_FILTER);
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]);
  const [pageSize, setPageSize] = useState(50);
  const [labeling, setLabeling] = useState(false);
  const [selection, setSelection] = useState<Set<string>>(() => new Set());
  const anchor = useRef<number | null>(null);
  const [editing, setEditing] = useState<string[] | null>(null);
  const [managing, setManaging] = useState(false);
  const [adding, setAdding] = useState(false);
  const [previewing, setPreviewing] = useState<string | null>(null);
  const [asking, setAsking] = useState<(() => void) | null>(null);
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<unknown>(null);
  const { pending, put, clear, retain } = usePendingEdits();
  const dirty = pending.size > 0;
  const blocker = useUnsavedChanges(dirty);

  const token = tokens[tokens.length - 1];
  const entriesKey = ["entries", arn, filter, pageSize, token];
  const entriesQuery = useQuery({
    queryKey: entriesKey,
    queryFn: () =>
      call<EntriesPage>("ListDatasetEntries", {
        DatasetArn: arn,
        MaxResults: pageSize,
        ...filterRequest(filter),
        ...(token ? { NextToken: token } : {}),
      }),
    placeholderData: keepPreviousData,
  });
  const labelsQuery = useQuery({
    queryKey: ["labels", arn],
    queryFn: () => call<{ Labels: DatasetLabel[] }>("ListLabels", { DatasetArn: arn }),
  });
  const labelList = labelsQuery.data?.Labels;
  const labels = useMemo(() => (labelList ?? []).map((l) => l.Name), [labelList]);

  const lines = entriesQuery.data?.DatasetEntries;
  const loaded = useMemo(() => (lines ?? []).map(parseEntry), [lines]);
  const entries = useMemo(() => loaded.map((entry) => effective(entry, pending)), [loaded, pending]);
  const byRef = useMemo(() => new Map(loaded.map((e) => [e.ref, e])), [loaded]);
  const edited = useMemo(() => new Set(pending.keys()), [pending]);

  // When an import or update ends, show what it changed.
  const status = dataset.data?.Status;
  const wasBusy = useRef(false);
  useEffect(() => {
    const busy = Boolean(status && BUSY.test(status));
    if (wasBusy.current && !busy) {
      void queries.invalidateQueries({ queryKey: ["entries", arn] });
      void queries.invalidateQueries({ queryKey: ["labels", arn] });
    }
    wasBusy.current = busy;
  }, [status, arn, queries]);
  const busy = Boolean(status && BUSY.test(status));

  /** Runs `action` now, or after the user agreed to drop the unsaved changes. */
  const guard = useCallback(
    (action: () => void) => {
      if (!dirty) action();
      else setAsking(() => action);
    },
    [dirty],
  );

  const changeFilter = (next: Filter) =>
    guard(() => {
      clear();
      setFilter(next);
      setTokens([undefined]);
      setSelection(new Set());
      anchor.current = null;
    });
  const turnPage = (next: (t: (string | undefined)[]) => (string | undefined)[]) =>
    guard(() => {
      clear();
      setTokens(next);
      setSelection(new Set());
      anchor.current = null;
    });

  const latestEntries = useRef(entries);
  latestEntries.current = entries;
  const onSelect = useCallback((index: number, how: SelectGesture) => {
    const refs = latestEntries.current.map((e) => e.ref);
    const ref = refs[index];
    setSelection((previous) => {
      if (how.range && anchor.current !== null) {
        const [from, to] = [Math.min(anchor.current, index), Math.max(anchor.current, index)];
        const range = refs.slice(from, to + 1);
        return how.toggle ? new Set([...previous, ...range]) : new Set(range);
      }
      anchor.current = index;
      if (how.toggle) {
        const next = new Set(previous);
        if (next.has(ref)) next.delete(ref);
        else next.add(ref);
        return next;
      }
      return previous.size === 1 && previous.has(ref) ? new Set() : new Set([ref]);
    });
  }, []);

  const openPreview = useCallback((index: number) => setPreviewing(latestEntries.current[index]?.ref ?? null), []);
  const preview = previewing ? entries.find((e) => e.ref === previewing) : undefined;

  const applyLabels = (chosen: string[], add: boolean) => {
    for (const ref of selection) {
      const entry = byRef.get(ref);
      if (!entry) continue;
      const current = effective(entry, pending);
      const labelsNow = add
        ? [...current.labels, ...chosen.filter((l) => !current.labels.includes(l))]
        : current.labels.filter((l) => !chosen.includes(l));
      put(entry, { labels: labelsNow, boxes: current.boxes, size: current.size });
    }
  };

  const onBoxes = useCallback(
    (ref: string, boxes: Box[], size: [number, number]) => {
      const entry = byRef.get(ref);
      if (!entry) return;
      const current = effective(entry, pending);
      put(entry, { labels: current.labels, boxes, size });
    },
    [byRef, pending, put],
  );
  const draftOf = useCallback(
    (ref: string) => {
      const entry = byRef.get(ref);
      return entry ? effective(entry, pending) : { labels: [], boxes: [] };
    },
    [byRef, pending],
  );

  const save = async () => {
    setSaving(true);
    setSaveError(null);
    try {
      const result = await call<{ Entries: string[]; Status: string; StatusMessage?: string }>("SaveDatasetEntries", {
        DatasetArn: arn,
        Entries: saveEntries(pending),
      });
      const stored = new Map(result.Entries.map((line) => [refOf(line), line]));
      queries.setQueryData<EntriesPage>(entriesKey, (page) =>
        page ? { ...page, DatasetEntries: page.DatasetEntries.map((line) => stored.get(refOf(line)) ?? line) } : page,
      );
      const count = pending.size;
      clear();
      flash("success", `Saved ${count} image${count === 1 ? "" : "s"}.`);
      void queries.invalidateQueries({ queryKey: ["labels", arn] });
      void queries.invalidateQueries({ queryKey: ["dataset", arn] });
      void queries.invalidateQueries({ queryKey: ["project"] });
    } catch (error) {
      setSaveError(error);
    } finally {
      setSaving(false);
    }
  };

  /** After a conflict: loads the page again and drops the changes of the images someone else saved. */
  const reload = async () => {
    setSaveError(null);
    const fresh = await entriesQuery.refetch();
    const current = new Map((fresh.data?.DatasetEntries ?? []).map((line) => [refOf(line), line]));
    const before = pending.size;
    const kept = [...pending].filter(([ref, change]) => current.get(ref) === change.base).length;
    retain((ref, change) => current.get(ref) === change.base);
    flash(
      "info",
      `Reloaded. ${before - kept} change${before - kept === 1 ? "" : "s"} to images saved elsewhere ${before - kept === 1 ? "was" : "were"} dropped; ${kept} kept.`,
    );
  };

  const exitLabeling = () =>
    guard(() => {
      clear();
      setLabeling(false);
      setSelection(new Set());
      setEditing(null);
    });

  const onLabelsChanged = (next: DatasetLabel[], entriesChanged: boolean) => {
    queries.setQueryData(["labels", arn], { Labels: next });
    if (entriesChanged) {
      void queries.invalidateQueries({ queryKey: ["entries", arn] });
      void queries.invalidateQueries({ queryKey: ["dataset", arn] });
    }
  };

  const conflict = saveError instanceof ApiError && saveError.type === "ConflictException";
  const page = entriesQuery.data;
  const selectedInOrder = entries.filter((e) => selection.has(e.ref)).map((e) => e.ref);
  return (
    <>
      <div className="ds-dataset-top">
        <DatasetStatus arn={arn} />
        <div className="ds-dataset-actions">
          {labeling ? (
            <>
              <span className={dirty ? "ds-unsaved ds-unsaved-on" : "ds-unsaved"} data-testid="unsaved-count">
                {pending.size} unsaved change{pending.size === 1 ? "" : "s"}
              </span>
              <Button onClick={exitLabeling} data-testid="exit-labeling">
                Exit
              </Button>
              <Button
                variant="primary"
                onClick={() => void save()}
                disabled={!dirty || busy}
                busy={saving}
                title={busy ? "Wait until the dataset's import or update has finished" : undefined}
                data-testid="save-changes"
              >
                Save changes
              </Button>
            </>
          ) : (
            <>
              <Button onClick={() => setAdding(true)} data-testid="add-images">
                Add images
              </Button>
              <Button variant="primary" onClick={() => setLabeling(true)} data-testid="start-labeling">
                Start labeling
              </Button>
            </>
          )}
        </div>
      </div>
      {saveError !== null && (
        <Alert kind="error" title={saveError instanceof ApiError ? saveError.type : "Error"} testId="save-error" onDismiss={() => setSaveError(null)}>
          <span className="error-message">{saveError instanceof Error ? saveError.message : String(saveError)}</span>
          {conflict && (
            <div className="modal-actions">
              <Button onClick={() => void reload()} data-testid="reload-conflicts">
                Reload the changed images
              </Button>
            </div>
          )}
        </Alert>
      )}
      <div className="ds-dataset-layout">
        <LabelPanel
          labels={labelList ?? []}
          loading={labelsQuery.isPending}
          filter={filter}
          onChange={changeFilter}
          onManage={() => setManaging(true)}
        />
        <section className="panel ds-gallery-panel">
          <div className="ds-gallery-bar">
            <ShowFilter filter={filter} onChange={changeFilter} />
            {filter.label !== null && (
              <span className="ds-chip" data-testid="active-label-filter">
                <span className="ds-chip-text">label: {filter.label}</span>
                <button className="ds-chip-clear" aria-label="Clear the label filter" onClick={() => changeFilter({ ...filter, label: null })}>
                  ×
                </button>
              </span>
            )}
            <label className="ds-page-size">
              Per page{" "}
              <select
                value={pageSize}
                onChange={(event) => {
                  const size = Number(event.target.value);
                  guard(() => {
                    clear();
                    setPageSize(size);
                    setTokens([undefined]);
                    setSelection(new Set());
                  });
                }}
                data-testid="page-size"
              >
                {PAGE_SIZES.map((size) => (
                  <option key={size} value={size}>
                    {size}
                  </option>
                ))}
              </select>
            </label>
          </div>
          {labeling && (
            <LabelingToolbar
              labels={labels}
              selected={selection.size}
              total={entries.length}
              onSelectAll={() => setSelection(new Set(entries.map((e) => e.ref)))}
              onClear={() => setSelection(new Set())}
              onApply={applyLabels}
              onDraw={() => setEditing(selectedInOrder)}
              onManage={() => setManaging(true)}
            />
          )}
          <ErrorAlert error={entriesQuery.error} />
          {entriesQuery.isPending ? (
            <Spinner label="Loading images" />
          ) : entries.length === 0 ? (
            <Empty>
              {filter === NO_FILTER || (filter.label === null && filter.show === "all")
                ? busy
                  ? "The images are being imported…"
                  : "No images yet. Add images to this dataset."
                : "No image matches this filter."}
            </Empty>
          ) : (
            <Gallery
              dataset={arn}
              entries={entries}
              edited={edited}
              selected={selection}
              labeling={labeling}
              labels={labels}
              onSelect={onSelect}
              onOpen={openPreview}
            />
          )}
          <Pager
            page={tokens.length}
            hasNext={Boolean(page?.NextToken)}
            busy={entriesQuery.isFetching}
            onPrevious={() => turnPage((t) => t.slice(0, -1))}
            onNext={() => turnPage((t) => [...t, page?.NextToken])}
          />
        </section>
      </div>
      {editing && editing.length > 0 && (
        <BoxEditor
          dataset={arn}
          refs={editing}
          draftOf={draftOf}
          labels={labels}
          onBoxes={onBoxes}
          onClose={() => setEditing(null)}
          onManageLabels={() => setManaging(true)}
          paused={managing || asking !== null}
        />
      )}
      {preview && <EntryPreview dataset={arn} entry={preview} labels={labels} onClose={() => setPreviewing(null)} />}
      {managing && (
        <ManageLabelsDialog
          arn={arn}
          labels={labelList ?? []}
          dirty={dirty}
          onChanged={onLabelsChanged}
          onClose={() => setManaging(false)}
        />
      )}
      {adding && (
        <AddImagesDialog
          arn={arn}
          onClose={() => setAdding(false)}
          onUploaded={() => {
            for (const key of ["dataset", "entries", "labels"]) void queries.invalidateQueries({ queryKey: [key, arn] });
            void queries.invalidateQueries({ queryKey: ["project"] });
          }}
        />
      )}
      {asking && (
        <LeaveDialog
          message={discardMessage(pending.size)}
          onStay={() => setAsking(null)}
          onLeave={() => {
            const action = asking;
            setAsking(null);
            action();
          }}
        />
      )}
      {blocker.state === "blocked" && (
        <LeaveDialog message={discardMessage(pending.size)} onStay={() => blocker.reset()} onLeave={() => blocker.proceed()} />
      )}
    </>
  );
}
