// The console's small component kit: buttons, alerts, status badges, dialogs, tabs, paging.
// User-supplied strings are only ever rendered as text nodes (React escapes them); nothing here
// sets HTML from a string.

import { createContext, useCallback, useContext, useEffect, useId, useRef, useState } from "react";
import type { ButtonHTMLAttributes, ReactNode } from "react";
import { ApiError } from "../api";

type Variant = "primary" | "normal" | "danger" | "link";

export function Button({
  variant = "normal",
  busy = false,
  className = "",
  children,
  disabled,
  ...rest
}: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: Variant; busy?: boolean }) {
  return (
    <button className={`btn btn-${variant} ${className}`} disabled={disabled || busy} aria-busy={busy} {...rest}>
      {busy && <Spinner small />}
      {children}
    </button>
  );
}

export function Spinner({ small = false, label }: { small?: boolean; label?: string }) {
  return (
    <span className={small ? "spinner spinner-small" : "spinner"} role="status" aria-label={label ?? "Loading"}>
      {label && !small && <span className="spinner-label">{label}</span>}
    </span>
  );
}

export function Alert({
  kind = "info",
  title,
  children,
  onDismiss,
  testId,
}: {
  kind?: "info" | "success" | "warning" | "error";
  title?: ReactNode;
  children?: ReactNode;
  onDismiss?: () => void;
  testId?: string;
}) {
  return (
    <div className={`alert alert-${kind}`} role={kind === "error" ? "alert" : "status"} data-testid={testId}>
      <div className="alert-body">
        {title && <strong className="alert-title">{title}</strong>}
        {children && <div>{children}</div>}
      </div>
      {onDismiss && (
        <button className="alert-dismiss" aria-label="Dismiss" onClick={onDismiss}>
          ×
        </button>
      )}
    </div>
  );
}

/** An error from the API with its AWS exception name, or any other error. */
export function ErrorAlert({ error, onDismiss, title }: { error: unknown; onDismiss?: () => void; title?: string }) {
  if (!error) return null;
  const type = error instanceof ApiError ? error.type : "Error";
  const message = error instanceof Error ? error.message : String(error);
  return (
    <Alert kind="error" title={title ?? type} onDismiss={onDismiss} testId="error">
      {title && <span className="error-type">{type}: </span>}
      <span className="error-message">{message}</span>
    </Alert>
  );
}

const STATUS_TONES: Record<string, string> = {
  CREATED: "ok",
  CREATE_COMPLETE: "ok",
  UPDATE_COMPLETE: "ok",
  TRAINING_COMPLETED: "ok",
  COPYING_COMPLETED: "ok",
  RUNNING: "ok",
  CREATE_FAILED: "bad",
  UPDATE_FAILED: "bad",
  TRAINING_FAILED: "bad",
  COPYING_FAILED: "bad",
  FAILED: "bad",
  STOPPED: "idle",
  DEPRECATED: "idle",
  EXPIRED: "idle",
};

/** A status in the AWS spelling, coloured by what it means; in-progress states spin. */
export function StatusBadge({ status }: { status?: string }) {
  if (!status) return null;
  const tone =
    STATUS_TONES[status] ?? (/IN_PROGRESS|ING$/.test(status) ? "busy" : "idle");
  return (
    <span className={`badge badge-${tone}`} data-status={status}>
      {tone === "busy" && <Spinner small />}
      {status.replaceAll("_", " ").toLowerCase()}
    </span>
  );
}

export function ProgressBar({ percent, label }: { percent: number; label?: string }) {
  const value = Math.max(0, Math.min(100, percent));
  return (
    <div className="progress" role="progressbar" aria-valuenow={Math.round(value)} aria-valuemin={0} aria-valuemax={100} aria-label={label}>
      <div className="progress-fill" style={{ width: `${value}%` }} />
    </div>
  );
}

export function Modal({
  title,
  children,
  footer,
  onClose,
  wide = false,
}: {
  title: ReactNode;
  children: ReactNode;
  footer?: ReactNode;
  onClose: () => void;
  wide?: boolean;
}) {
  const titleId = useId();
  const ref = useRef<HTMLDivElement>(null);
  // The latest onClose, so a parent re-rendering with a new arrow function (a poll) neither re-adds the
  // listener nor moves the focus back to the first control while the user types.
  const close = useRef(onClose);
  close.current = onClose;
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") close.current();
    };
    document.addEventListener("keydown", onKey);
    ref.current
      ?.querySelector<HTMLElement>(".modal-body input, .modal-body select, .modal-body textarea, .modal-footer button")
      ?.focus();
    return () => document.removeEventListener("keydown", onKey);
  }, []);
  return (
    <div className="modal-backdrop" onMouseDown={(event) => event.target === event.currentTarget && onClose()}>
      <div className={wide ? "modal modal-wide" : "modal"} role="dialog" aria-modal="true" aria-labelledby={titleId} ref={ref}>
        <header className="modal-header">
          <h2 id={titleId}>{title}</h2>
          <button className="modal-close" aria-label="Close" onClick={onClose}>
            ×
          </button>
        </header>
        <div className="modal-body">{children}</div>
        {footer && <footer className="modal-footer">{footer}</footer>}
      </div>
    </div>
  );
}

/** A dialog whose confirm button works only once `word` ("delete", "stop") is typed, as AWS asks. */
export function ConfirmTyped({
  title,
  word,
  action,
  children,
  onConfirm,
  onClose,
  busy,
  error,
}: {
  title: string;
  word: string;
  action: string;
  children?: ReactNode;
  onConfirm: () => void;
  onClose: () => void;
  busy?: boolean;
  error?: unknown;
}) {
  const [typed, setTyped] = useState("");
  return (
    <Modal
      title={title}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="danger" disabled={typed !== word} busy={busy} onClick={onConfirm} data-testid="confirm">
            {action}
          </Button>
        </>
      }
    >
      {children}
      <ErrorAlert error={error} />
      <label className="field">
        <span className="field-label">
          To confirm, type <code>{word}</code> in the field.
        </span>
        <input
          value={typed}
          onChange={(event) => setTyped(event.target.value)}
          placeholder={word}
          aria-label={`Type ${word} to confirm`}
          data-testid="confirm-input"
          onKeyDown={(event) => event.key === "Enter" && typed === word && onConfirm()}
        />
      </label>
    </Modal>
  );
}

export function Field({
  label,
  hint,
  error,
  children,
}: {
  label: ReactNode;
  hint?: ReactNode;
  error?: string;
  children: ReactNode;
}) {
  return (
    <label className="field">
      <span className="field-label">{label}</span>
      {children}
      {hint && <span className="field-hint">{hint}</span>}
      {error && <span className="field-error">{error}</span>}
    </label>
  );
}

export function Tabs<T extends string>({
  tabs,
  active,
  onChange,
}: {
  tabs: { id: T; label: ReactNode }[];
  active: T;
  onChange: (id: T) => void;
}) {
  return (
    <div className="tabs" role="tablist">
      {tabs.map((tab) => (
        <button
          key={tab.id}
          role="tab"
          aria-selected={tab.id === active}
          className={tab.id === active ? "tab tab-active" : "tab"}
          onClick={() => onChange(tab.id)}
        >
          {tab.label}
        </button>
      ))}
    </div>
  );
}

/** Previous / next paging over NextToken pages. */
export function Pager({
  page,
  hasNext,
  onPrevious,
  onNext,
  busy,
}: {
  page: number;
  hasNext: boolean;
  onPrevious: () => void;
  onNext: () => void;
  busy?: boolean;
}) {
  return (
    <nav className="pager" aria-label="Pages">
      <Button variant="link" disabled={page <= 1 || busy} onClick={onPrevious} aria-label="Previous page">
        ‹ Previous
      </Button>
      <span className="pager-page" data-testid="page-number">
        Page {page}
      </span>
      <Button variant="link" disabled={!hasNext || busy} onClick={onNext} aria-label="Next page">
        Next ›
      </Button>
    </nav>
  );
}

export function CopyBlock({ text, label }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = useCallback(async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      setCopied(false);
    }
  }, [text]);
  return (
    <div className="copy-block">
      {label && <div className="copy-label">{label}</div>}
      <pre>
        <code>{text}</code>
      </pre>
      <Button variant="link" onClick={copy} className="copy-button">
        {copied ? "Copied" : "Copy"}
      </Button>
    </div>
  );
}

export function KeyValue({ items }: { items: [ReactNode, ReactNode][] }) {
  return (
    <dl className="key-value">
      {items.map(([key, value], index) => (
        <div key={index} className="key-value-item">
          <dt>{key}</dt>
          <dd>{value ?? "–"}</dd>
        </div>
      ))}
    </dl>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function formatTime(epochSeconds?: number): string {
  if (!epochSeconds) return "–";
  return new Date(epochSeconds * 1000).toLocaleString();
}

export function formatDuration(seconds?: number): string {
  if (seconds === undefined || seconds === null) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function formatPercent(value?: number, digits = 1): string {
  if (value === undefined || value === null || Number.isNaN(value)) return "–";
  return `${(value * 100).toFixed(digits)}%`;
}

export function formatScore(value?: number): string {
  if (value === undefined || value === null || Number.isNaN(value)) return "–";
  return value.toFixed(3);
}

// -- flash messages -------------------------------------------------------------------------------

interface Flash {
  id: number;
  kind: "info" | "success" | "warning" | "error";
  text: ReactNode;
}

const FlashContext = createContext<(kind: Flash["kind"], text: ReactNode) => void>(() => undefined);

export function FlashProvider({ children }: { children: ReactNode }) {
  const [items, setItems] = useState<Flash[]>([]);
  const push = useCallback((kind: Flash["kind"], text: ReactNode) => {
    const id = Date.now() + Math.random();
    setItems((current) => [...current, { id, kind, text }]);
    setTimeout(() => setItems((current) => current.filter((item) => item.id !== id)), kind === "error" ? 12000 : 5000);
  }, []);
  return (
    <FlashContext.Provider value={push}>
      {children}
      <div className="flashes" aria-live="polite">
        {items.map((item) => (
          <Alert key={item.id} kind={item.kind} onDismiss={() => setItems((c) => c.filter((x) => x.id !== item.id))} testId="flash">
            {item.text}
          </Alert>
        ))}
      </div>
    </FlashContext.Provider>
  );
}

/** `flash(kind, text)`: a message at the top of the page that goes away by itself. */
export function useFlash() {
  return useContext(FlashContext);
}

/** A short description of an error for a flash message: "AwsName: message". */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return `${error.type}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
