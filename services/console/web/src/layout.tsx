// The frame of every page: header with the signed-in key and sign-out, breadcrumbs, session warnings.

import { useEffect, useState } from "react";
import type { ReactNode } from "react";
import { Link, Outlet, useLocation } from "react-router";
import { ApiError, loadSession, onSignedOut, signOut } from "./api";
import type { SessionInfo } from "./api";
import { Button, Modal } from "./ui/components";

export function Shell({ session }: { session: SessionInfo }) {
  const [signedOut, setSignedOut] = useState<ApiError | null>(null);
  const location = useLocation();
  useEffect(() => onSignedOut(setSignedOut), []);
  const next = encodeURIComponent(location.pathname + location.search);
  return (
    <div className="app">
      <header className="topbar">
        <Link to="/projects" className="brand">
          <span className="brand-mark">◧</span> customlabels
        </Link>
        <nav className="topnav">
          <Link to="/projects">Projects</Link>
        </nav>
        <div className="topbar-right">
          <span className="who" title="Signed in with this access key">
            {session.AccessKeyId} · {session.Region}
          </span>
          <Button variant="link" onClick={() => void signOut()} data-testid="sign-out">
            Sign out
          </Button>
        </div>
      </header>
      <main className="content">
        <Outlet />
      </main>
      {signedOut && (
        <Modal title="Signed out" onClose={() => window.location.assign(`/signin?next=${next}`)}>
          <p data-testid="signed-out">
            <strong>{signedOut.type}</strong>: {signedOut.message}
          </p>
          <p>Unsaved changes on this page are kept until you leave it; sign in again in another tab to save them.</p>
          <div className="modal-actions">
            <a className="btn btn-primary" href={`/signin?next=${next}`} target="_blank" rel="noopener">
              Sign in in a new tab
            </a>
            <Button
              onClick={() =>
                loadSession().then(
                  () => setSignedOut(null),
                  () => undefined,
                )
              }
              data-testid="signed-in-again"
            >
              I have signed in again
            </Button>
          </div>
        </Modal>
      )}
    </div>
  );
}

export interface Crumb {
  label: string;
  to?: string;
}

export function PageHeader({
  crumbs,
  title,
  actions,
  description,
}: {
  crumbs: Crumb[];
  title: ReactNode;
  actions?: ReactNode;
  description?: ReactNode;
}) {
  return (
    <div className="page-header">
      <nav className="crumbs" aria-label="Breadcrumbs">
        {crumbs.map((crumb, index) => (
          <span key={index}>
            {crumb.to ? <Link to={crumb.to}>{crumb.label}</Link> : <span>{crumb.label}</span>}
            {index < crumbs.length - 1 && <span className="crumb-sep">›</span>}
          </span>
        ))}
      </nav>
      <div className="page-title-row">
        <h1>{title}</h1>
        {actions && <div className="page-actions">{actions}</div>}
      </div>
      {description && <p className="page-description">{description}</p>}
    </div>
  );
}
