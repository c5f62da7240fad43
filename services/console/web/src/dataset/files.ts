// Local images picked for upload: from drag and drop (files and folders), a file picker or a folder
// picker; their folder labels, the checks the server makes too, and the batches they travel in.

export const MAX_IMAGE_BYTES = 15 * 1024 * 1024;
/** Files per /api/upload request: each request is one import, and a dataset takes one at a time. */
export const BATCH_FILES = 50;
const BATCH_BYTES = 200 * 1024 * 1024;
const IMAGE_NAME = /\.(png|jpe?g)$/i;

/** A file and its path relative to what was dropped or picked ("photos/cats/1.jpg"). */
export interface PickedFile {
  file: File;
  path: string;
}

function hidden(path: string): boolean {
  return path.split("/").some((part) => part.startsWith("."));
}

/** Files from <input type=file> (webkitRelativePath is set by the folder picker). */
export function filesFromInput(list: FileList | null): PickedFile[] {
  return [...(list ?? [])].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

function readBatch(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

async function walk(entry: FileSystemEntry, out: PickedFile[]): Promise<void> {
  const path = entry.fullPath.replace(/^\/+/, "") || entry.name;
  if (entry.isFile) {
    out.push({ file: await fileOf(entry as FileSystemFileEntry), path });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  // readEntries answers in pieces (about 100 entries each) until it answers none.
  for (let batch = await readBatch(reader); batch.length > 0; batch = await readBatch(reader)) {
    for (const child of batch) await walk(child, out);
  }
}

/** Every file of a drop, folders traversed; the entries are taken before the event ends (the browser clears them). */
export async function filesFromDrop(transfer: DataTransfer): Promise<PickedFile[]> {
  const items = [...transfer.items].filter((item) => item.kind === "file");
  const taken = items.map((item) => ({ entry: item.webkitGetAsEntry?.() ?? null, file: item.getAsFile() }));
  if (items.length === 0) return filesFromInput(transfer.files);
  const out: PickedFile[] = [];
  for (const { entry, file } of taken) {
    if (entry) await walk(entry, out);
    else if (file) out.push({ file, path: file.name });
  }
  return out;
}

/** Drops hidden files and folders (.DS_Store, .git/…) as the CLI does; returns the rest and how many went. */
export function withoutHidden(files: PickedFile[]): { files: PickedFile[]; skipped: number } {
  const kept = files.filter((f) => !hidden(f.path));
  return { files: kept, skipped: files.length - kept.length };
}

/**
 * The label each file's folder gives it, like the CLI: when every file lies in one top folder
 * (DIR/<child>/...), that folder is stripped and <child> is the label (files directly in DIR have
 * none); when they come from several top folders, each top folder is the label.
 */
export function folderLabels(paths: string[]): (string | null)[] {
  const folders = paths.map((path) => path.split("/").filter(Boolean).slice(0, -1));
  const tops = new Set(folders.filter((f) => f.length > 0).map((f) => f[0]));
  if (tops.size === 1 && folders.every((f) => f.length > 0)) return folders.map((f) => f[1] ?? null);
  return folders.map((f) => f[0] ?? null);
}

/** Why the server would refuse a file before reading it, or null. */
export function refusal(file: File, path: string): { code: string; message: string } | null {
  if (!IMAGE_NAME.test(path))
    return { code: "InvalidImageFormatException", message: "Only PNG and JPEG images (.png, .jpg, .jpeg) can be uploaded." };
  if (file.size > MAX_IMAGE_BYTES)
    return {
      code: "ImageTooLargeException",
      message: `The file is ${(file.size / 1048576).toFixed(1)} MB; images can be at most 15 MB.`,
    };
  if (file.size === 0) return { code: "InvalidImageFormatException", message: "The file is empty." };
  return null;
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * Groups files into upload requests: at most BATCH_FILES files and 200 MB each, and no two files
 * with the same name in one request (the dataset service stores one request's files side by side).
 */
export function batches<T extends PickedFile>(items: T[]): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  let names = new Set<string>();
  for (const item of items) {
    const name = baseName(item.path);
    if (current.length > 0 && (current.length >= BATCH_FILES || bytes + item.file.size > BATCH_BYTES || names.has(name))) {
      out.push(current);
      current = [];
      bytes = 0;
      names = new Set();
    }
    current.push(item);
    bytes += item.file.size;
    names.add(name);
  }
  if (current.length > 0) out.push(current);
  return out;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1048576).toFixed(1)} MB`;
}
