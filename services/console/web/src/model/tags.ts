// Tag rules of the service model (spec/api.md §0.3 TagMap), checked before anything is sent.

export const MAX_TAGS = 200;
const TAG_CHARS = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
const TAG_CHAR = /[\p{L}\p{Z}\p{N}_.:/=+\-@]/u;

function length(text: string): number {
  return Array.from(text).length;
}

/** The characters of `text` a tag may not hold, each once, for the message. */
function badCharacters(text: string): string {
  return Array.from(new Set(Array.from(text).filter((c) => !TAG_CHAR.test(c)))).join(" ");
}

/** What is wrong with a tag key, or undefined. */
export function tagKeyProblem(key: string): string | undefined {
  if (length(key) < 1) return "Enter a key.";
  if (length(key) > 128) return "A key has at most 128 characters.";
  if (key.toLowerCase().startsWith("aws:")) return "Keys starting with aws: are reserved.";
  if (!TAG_CHARS.test(key)) return `Not allowed in a key: ${badCharacters(key)}`;
  return undefined;
}

/** What is wrong with a tag value, or undefined. */
export function tagValueProblem(value: string): string | undefined {
  if (length(value) > 256) return "A value has at most 256 characters.";
  if (!TAG_CHARS.test(value)) return `Not allowed in a value: ${badCharacters(value)}`;
  return undefined;
}

export interface TagRow {
  key: string;
  value: string;
}

export interface TagRowProblems {
  key?: string;
  value?: string;
}

/** Per-row problems (duplicate keys included) and an overall one (too many tags). */
export function tagRowsProblems(rows: TagRow[], existing = 0): { rows: TagRowProblems[]; overall?: string } {
  const seen = new Map<string, number>();
  rows.forEach((row) => seen.set(row.key, (seen.get(row.key) ?? 0) + 1));
  const problems = rows.map((row) => ({
    key: tagKeyProblem(row.key) ?? ((seen.get(row.key) ?? 0) > 1 ? "This key is given twice." : undefined),
    value: tagValueProblem(row.value),
  }));
  const overall = rows.length + existing > MAX_TAGS ? `At most ${MAX_TAGS} tags.` : undefined;
  return { rows: problems, overall };
}

/** True when no row and no overall problem is left. */
export function tagRowsValid(check: ReturnType<typeof tagRowsProblems>): boolean {
  return !check.overall && check.rows.every((p) => !p.key && !p.value);
}
