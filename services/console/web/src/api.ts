// The console's own HTTP API (services/console/app.py): every call carries the session cookie and,
// when it changes anything, the session's CSRF token. Errors arrive as AWS's {"__type", "message"}.

export class ApiError extends Error {
  readonly type: string;
  readonly status: number;

  constructor(type: string, message: string, status: number) {
    super(message);
    this.type = type;
    this.status = status;
  }

  /** True for the errors that mean "sign in again". */
  get signedOut(): boolean {
    return this.status === 401;
  }
}

export interface SessionInfo {
  AccessKeyId: string;
  CsrfToken: string;
  ExpiresAt: number;
  IdleExpiresAt: number;
  IdleTimeoutSeconds: number;
  Region: string;
  AccountId: string;
}

let csrfToken = "";
const signedOutListeners = new Set<(error: ApiError) => void>();

/** Calls `listener` whenever a request finds the session gone (expired or signed out elsewhere). */
export function onSignedOut(listener: (error: ApiError) => void): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

async function failure(response: Response): Promise<ApiError> {
  let type = `HTTP${response.status}`;
  let message = response.statusText || "The request failed";
  try {
    const body = await response.json();
    if (body && typeof body.__type === "string") type = body.__type;
    if (body && typeof body.message === "string") message = body.message;
  } catch {
    // not JSON: keep the HTTP status
  }
  const error = new ApiError(type, message, response.status);
  if (error.signedOut) signedOutListeners.forEach((listener) => listener(error));
  return error;
}

/** Reads the session (and its CSRF token); called once at start and after sign-in. */
export async function loadSession(): Promise<SessionInfo> {
  const response = await fetch("/api/session", { credentials: "same-origin" });
  if (!response.ok) throw await failure(response);
  const session = (await response.json()) as SessionInfo;
  csrfToken = session.CsrfToken;
  return session;
}

export function csrf(): string {
  return csrfToken;
}

/** Runs one operation: a Rekognition operation by its AWS name, or one of the console's own. */
export async function call<T = Record<string, unknown>>(operation: string, body: object = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`/api/op/${encodeURIComponent(operation)}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError("NetworkError", "The console cannot be reached. Check your connection and retry.", 0);
  }
  if (!response.ok) throw await failure(response);
  return (await response.json()) as T;
}

/** Every page of a paged operation (NextToken / MaxResults), concatenated by `key`. */
export async function callAll<T>(operation: string, body: object, key: string, limit = 10_000): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const page = await call<Record<string, unknown>>(operation, { ...body, ...(token ? { NextToken: token } : {}) });
    items.push(...((page[key] as T[]) ?? []));
    token = page.NextToken as string | undefined;
  } while (token && items.length < limit);
  return items;
}

export interface UploadOutcome {
  FileName: string;
  SourceRef?: string;
  ErrorCode?: string;
  ErrorMessage?: string;
}

export interface UploadResult {
  DatasetArn: string;
  Images: UploadOutcome[];
}

/** POSTs a multipart form to /api/upload; `onProgress(sentBytes, totalBytes)` follows the upload. */
export function upload(form: FormData, onProgress: (sent: number, total: number) => void): Promise<UploadResult> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/api/upload");
    request.setRequestHeader("X-CSRF-Token", csrfToken);
    request.responseType = "json";
    request.upload.onprogress = (event) => onProgress(event.loaded, event.total);
    request.onerror = () => reject(new ApiError("NetworkError", "The upload was interrupted. Retry.", 0));
    request.onload = () => {
      const body = request.response;
      if (request.status >= 200 && request.status < 300) {
        resolve(body as UploadResult);
        return;
      }
      const error = new ApiError(
        body?.__type ?? `HTTP${request.status}`,
        body?.message ?? request.statusText,
        request.status,
      );
      if (error.signedOut) signedOutListeners.forEach((listener) => listener(error));
      reject(error);
    };
    request.send(form);
  });
}

/** The URL of an entry's image (size 0 = original) or of a stored copy by key. */
export function imageUrl(source: { dataset: string; ref: string } | { key: string }, size: 0 | 128 | 256 | 512 | 1024): string {
  const params = new URLSearchParams("key" in source ? { key: source.key } : { dataset: source.dataset, ref: source.ref });
  params.set("size", String(size));
  return `/api/image?${params.toString()}`;
}

/** The URL that downloads one of a version's files (or `validation`, a zip of the validation results). */
export function fileUrl(versionArn: string, file: string): string {
  return `/api/files?${new URLSearchParams({ version: versionArn, file }).toString()}`;
}

/** Signs out: a POST with the CSRF token, then the sign-in page. */
export async function signOut(): Promise<void> {
  await fetch("/signout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken } });
  window.location.assign("/signin");
}
