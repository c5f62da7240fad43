// Unsaved labeling changes: per image, the line it was loaded as (Base) and what it should say now.

import { useCallback, useState } from "react";
import { parseEntry, sameDraft } from "./entries";
import type { Draft, Entry } from "./entries";

export interface Pending {
  base: string;
  draft: Draft;
}

export interface SaveEntry {
  SourceRef: string;
  Base: string;
  Labels: string[];
  Boxes: { Label: string; Left: number; Top: number; Width: number; Height: number }[];
}

/** The SaveDatasetEntries entries for the pending changes. */
export function saveEntries(pending: Map<string, Pending>): SaveEntry[] {
  return [...pending].map(([ref, { base, draft }]) => ({
    SourceRef: ref,
    Base: base,
    Labels: draft.labels,
    Boxes: draft.boxes.map((b) => ({ Label: b.label, Left: b.left, Top: b.top, Width: b.width, Height: b.height })),
  }));
}

export function usePendingEdits() {
  const [pending, setPending] = useState<Map<string, Pending>>(() => new Map());

  /** Records what `entry` should say; a draft equal to the stored line is no change. */
  const put = useCallback((entry: Entry, draft: Draft) => {
    setPending((previous) => {
      const next = new Map(previous);
      const base = previous.get(entry.ref)?.base ?? entry.line;
      if (sameDraft(parseEntry(base), draft)) next.delete(entry.ref);
      else next.set(entry.ref, { base, draft });
      return next;
    });
  }, []);

  const clear = useCallback(() => setPending(new Map()), []);

  /** Keeps only the changes `keep` accepts; returns nothing (use the count before and after). */
  const retain = useCallback((keep: (ref: string, change: Pending) => boolean) => {
    setPending((previous) => new Map([...previous].filter(([ref, change]) => keep(ref, change))));
  }, []);

  return { pending, put, clear, retain };
}

/** An entry as it is shown: the pending draft when there is one. */
export function effective(entry: Entry, pending: Map<string, Pending>): Entry {
  const change = pending.get(entry.ref);
  return change ? { ...entry, ...change.draft, size: change.draft.size ?? entry.size } : entry;
}
