// Dataset entries as the console reads them: a stored JSON line → its labels, boxes and errors
// (spec/manifest.md §1-3; the cl-* keys are the dataset service's, see services/dataset/manifest.py).

export const CLASSIFICATION_TYPE = "groundtruth/image-classification";
export const DETECTION_TYPE = "groundtruth/object-detection";
export const MAX_LABEL_CHARS = 255;

/** A bounding box in pixels of the image as displayed. */
export interface Box {
  label: string;
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface EntryError {
  code: string;
  message: string;
}

/** What an entry says: its image-level labels and its boxes. */
export interface Draft {
  labels: string[];
  boxes: Box[];
  /** The image's (width, height) when known: from the line's image_size or from the box editor. */
  size?: [number, number];
}

export interface Entry extends Draft {
  ref: string;
  /** The line exactly as ListDatasetEntries returned it (the Base of a save). */
  line: string;
  errors: EntryError[];
  labeled: boolean;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function errorsIn(value: unknown): EntryError[] {
  if (!isObject(value) || !Array.isArray(value["cl-errors"])) return [];
  return (value["cl-errors"] as unknown[])
    .filter(isObject)
    .map((item) => ({ code: String(item.code ?? "ERROR"), message: String(item.message ?? "") }));
}

function finite(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** Reads one stored line. Labels of attributes the service flagged are left out (they are shown as errors). */
export function parseEntry(line: string): Entry {
  const data = JSON.parse(line) as Json;
  const ref = String(data["source-ref"] ?? "");
  const labels: string[] = [];
  const boxes: Box[] = [];
  const errors: EntryError[] = [...errorsIn(data)];
  let size: [number, number] | undefined;
  for (const [key, value] of Object.entries(data)) {
    if (key.startsWith("cl-") || key.endsWith("-metadata") || key === "source-ref") continue;
    const meta = data[`${key}-metadata`];
    if (!isObject(meta)) continue;
    const metaErrors = errorsIn(meta);
    errors.push(...metaErrors);
    if (meta.type === CLASSIFICATION_TYPE) {
      const name = meta["class-name"];
      if (typeof name === "string" && metaErrors.length === 0 && !labels.includes(name)) labels.push(name);
    } else if (meta.type === DETECTION_TYPE && isObject(value) && Array.isArray(value.annotations)) {
      const classMap = isObject(meta["class-map"]) ? meta["class-map"] : {};
      const declared = Array.isArray(value.image_size) ? value.image_size[0] : value.image_size;
      if (!size && isObject(declared) && finite(declared.width) && finite(declared.height))
        size = [declared.width, declared.height];
      for (const box of value.annotations as unknown[]) {
        if (!isObject(box)) continue;
        errors.push(...errorsIn(box));
        const label = classMap[String(box.class_id)];
        if (typeof label !== "string" || metaErrors.length > 0) continue;
        if (![box.left, box.top, box.width, box.height].every(finite)) continue;
        boxes.push({
          label,
          left: box.left as number,
          top: box.top as number,
          width: box.width as number,
          height: box.height as number,
        });
      }
    }
  }
  const meta = data["cl-metadata"];
  const labeled = isObject(meta) ? Boolean(meta.is_labeled) : labels.length > 0 || boxes.length > 0;
  return { ref, line, labels, boxes, errors, labeled, size };
}

/** The file name at the end of a source-ref. */
export function fileName(ref: string): string {
  return ref.slice(ref.lastIndexOf("/") + 1) || ref;
}

function sameBox(a: Box, b: Box): boolean {
  return (
    a.label === b.label &&
    Math.round(a.left) === Math.round(b.left) &&
    Math.round(a.top) === Math.round(b.top) &&
    Math.round(a.left + a.width) === Math.round(b.left + b.width) &&
    Math.round(a.top + a.height) === Math.round(b.top + b.height)
  );
}

/** Whether two drafts store the same line (labels as a set, boxes in order, in whole pixels). */
export function sameDraft(a: Draft, b: Draft): boolean {
  if (a.labels.length !== b.labels.length || a.boxes.length !== b.boxes.length) return false;
  const labels = new Set(a.labels);
  return b.labels.every((label) => labels.has(label)) && a.boxes.every((box, index) => sameBox(box, b.boxes[index]));
}

/** Every label an entry uses, image-level first, with its box count. */
export function labelUse(draft: Draft): { name: string; boxes: number }[] {
  const use = new Map<string, number>();
  for (const label of draft.labels) use.set(label, 0);
  for (const box of draft.boxes) use.set(box.label, (use.get(box.label) ?? 0) + 1);
  return [...use].map(([name, boxes]) => ({ name, boxes }));
}

/** Why a label name cannot be used, or null (the server checks the same: labeling.check_label). */
export function labelProblem(name: string): string | null {
  if (name.length === 0) return "Enter a label name.";
  if (name.length > MAX_LABEL_CHARS)
    return `A label must be 1 to ${MAX_LABEL_CHARS} characters long; this one has ${name.length}.`;
  if (!name.trim()) return "A label must not be only spaces.";
  if ([...name].some((c) => c.charCodeAt(0) < 32 || c.charCodeAt(0) === 127))
    return "A label must not hold control characters.";
  return null;
}

/** The smallest box side (natural pixels) that survives training's resize to 1280 px (spec/manifest.md §3). */
export function minBoxSide(width: number, height: number): number {
  const longest = Math.max(width, height);
  return longest > 1280 ? longest / 1280 : 1;
}

/** `box` moved and cut so that it lies inside a width × height image. */
export function clampBox(box: Box, width: number, height: number): Box {
  const left = Math.min(Math.max(0, box.left), width);
  const top = Math.min(Math.max(0, box.top), height);
  const right = Math.min(Math.max(0, box.left + box.width), width);
  const bottom = Math.min(Math.max(0, box.top + box.height), height);
  return { label: box.label, left, top, width: right - left, height: bottom - top };
}
