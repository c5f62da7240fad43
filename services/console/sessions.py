"""Sign-in and server-side sessions of the console.

A user signs in with an access key pair of the edge (CUSTOMLABELS_EDGE_CREDENTIALS). The browser
then holds only a random session id in an HttpOnly, SameSite=Strict cookie; the database holds its
sha256, the key id, a CSRF token and the expiry times. A session ends after `idle_s` without a
request, `max_s` after sign-in, at sign-out, or when its access key is removed from the
configuration. Every state-changing request must carry the session's CSRF token in a header.

Failed sign-ins are counted per client address; past `max_failures` within `window_s` further
attempts are refused with ThrottlingException until the window has passed, so keys cannot be
guessed at speed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.accesskeys import secret_matches
from services.common.auth import UnrecognizedClient
from services.common.errors import AccessDenied, ServiceError, Throttling
from services.console.repository import ConsoleRepository

COOKIE_NAME = "cl_session"
# Activity is written at most this often per session: a page of 100 thumbnails is one write.
TOUCH_EVERY_S = 30.0


class SignInRefused(UnrecognizedClient):
    """The access key pair is not one the console accepts."""


class NotSignedIn(ServiceError):
    """The request has no session (or one that was signed out)."""

    aws_name = "MissingAuthenticationTokenException"


class SessionExpired(ServiceError):
    """The session existed but is past its idle or absolute expiry."""

    aws_name = "ExpiredTokenException"


class BadCsrfToken(AccessDenied):
    """A state-changing request without the session's CSRF token."""


@dataclass(frozen=True)
class Session:
    """A valid session: who is signed in, the CSRF token, when it ends."""

    id_hash: bytes
    access_key_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    idle_expires_at: datetime


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class FailureCounter:
    """Failed sign-ins per client address in a sliding window (in this process)."""

    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def check(self, client: str) -> None:
        """Raises Throttling while `client` has used up its attempts."""
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if len(times) >= self.max_failures:
                wait = int(times[0] + self.window_s - now) + 1
                raise Throttling(f"Too many failed sign-ins from this address; try again in {wait} s")

    def failed(self, client: str) -> None:
        """Counts one failed attempt."""
        with self._lock:
            now = self.clock()
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # bound the memory a flood of addresses can take
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, client: str) -> None:
        """Forgets the failures of a client that signed in."""
        with self._lock:
            self._failures.pop(client, None)


class Sessions:
    """Signs users in and out and checks the session of each request."""

    def __init__(
        self,
        repo: ConsoleRepository,
        credentials: Mapping[str, str],
        idle_s: float,
        max_s: float,
        failures: FailureCounter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.credentials = credentials
        self.idle = timedelta(seconds=idle_s)
        self.max = timedelta(seconds=max_s)
        self.failures = failures
        self.clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def sign_in(self, access_key_id: str, secret_access_key: str, client: str) -> tuple[str, Session]:
        """Returns a new session id (the cookie's value) and the session; SignInRefused on wrong keys."""
        self.failures.check(client)
        key_id, secret = access_key_id.strip(), secret_access_key.strip()
        if not secret_matches(self.credentials, key_id, secret):
            self.failures.failed(client)
            # One message for both cases: which half was wrong is not the caller's to learn.
            raise SignInRefused("The access key ID or the secret access key is not valid.")
        self.failures.succeeded(client)
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._now()
        expires = now + self.max
        self.repo.create_session(_hash(session_id), key_id, csrf, now, expires)
        return session_id, Session(
            _hash(session_id), key_id, csrf, now, expires, min(now + self.idle, expires)
        )

    def session(self, session_id: str | None) -> Session:
        """The valid session of a cookie value; NotSignedIn or SessionExpired otherwise."""
        if not session_id:
            raise NotSignedIn("Sign in to use the console.")
        id_hash = _hash(session_id)
        row = self.repo.session(id_hash)
        if row is None:
            raise NotSignedIn("Sign in to use the console.")
        now = self._now()
        idle_end = row.last_seen_at + self.idle
        if now >= row.expires_at or now >= idle_end:
            self.repo.delete_session(id_hash)
            raise SessionExpired("Your session has expired. Sign in again.")
        if row.access_key_id not in self.credentials:
            # The key was revoked from the configuration: its sessions end with it.
            self.repo.delete_session(id_hash)
            raise SessionExpired("The access key of this session is no longer accepted. Sign in again.")
        if (now - row.last_seen_at).total_seconds() >= TOUCH_EVERY_S:
            self.repo.touch_session(id_hash, now)
            idle_end = now + self.idle
        return Session(
            id_hash,
            row.access_key_id,
            row.csrf_token,
            row.created_at,
            row.expires_at,
            min(idle_end, row.expires_at),
        )

    @staticmethod
    def check_csrf(session: Session, token: str | None) -> None:
        """Raises BadCsrfToken unless `token` is the session's CSRF token."""
        if not token or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
            raise BadCsrfToken("The request has no valid CSRF token. Reload the page and try again.")

    def sign_out(self, session: Session) -> None:
        """Ends a session."""
        self.repo.delete_session(session.id_hash)

    def purge(self) -> int:
        """Deletes expired sessions; returns how many."""
        now = self._now()
        return self.repo.delete_expired_sessions(now - self.idle, now)
