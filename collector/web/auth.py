"""Sessions (signed cookie, Secure/HttpOnly/SameSite), CSRF tokens and the current user's sites.

The cookie holds the user's session version from login; a session whose version no longer matches the
stored one (after logout, a new password, or the user being disabled or deleted) is over.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response
from starlette.types import ASGIApp

from collector.storage.engine import Database
from collector.users import Account, active_account

COOKIE = "edgescreen_session"
SESSION_MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class User:
    username: str
    sites: list[str]
    role: str = "staff"

    @property
    def sees_followup(self) -> bool:
        """Whether the user sees single positive walk-throughs (the follow-up list); see collector/users.py."""
        return self.role == "nurse"


class NotLoggedIn(Exception):
    """Raised by `current_user`; the app turns it into a redirect to /login."""


class SessionMiddleware(BaseHTTPMiddleware):
    """Every visitor gets a session with a CSRF token; the cookie is (re)written when it changes."""

    def __init__(self, app: ASGIApp, secret: bytes, secure: bool) -> None:
        super().__init__(app)
        self.serializer = URLSafeTimedSerializer(secret, salt="edgescreen-session")
        self.secure = secure

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        session: dict[str, Any] | None = None
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                session = self.serializer.loads(raw, max_age=SESSION_MAX_AGE_S)
            except BadSignature:
                session = None
            if not isinstance(session, dict) or not isinstance(session.get("csrf"), str):
                session = None
        fresh = session is None
        if session is None:
            session = {"csrf": secrets.token_urlsafe(32), "user": None}
        request.state.session = session
        request.state.session_changed = fresh
        response = await call_next(request)
        if request.state.session_changed:
            response.set_cookie(
                COOKIE,
                self.serializer.dumps(request.state.session),
                max_age=SESSION_MAX_AGE_S,
                httponly=True,
                secure=self.secure,
                samesite="strict",
            )
        return response


def start_session(request: Request, account: Account) -> None:
    """A new session (and CSRF token) on login, so a token seen before login is worth nothing after."""
    request.state.session = {
        "csrf": secrets.token_urlsafe(32),
        "user": account.username,
        "ver": account.session_version,
    }
    request.state.session_changed = True


def end_session(request: Request) -> None:
    request.state.session = {"csrf": secrets.token_urlsafe(32), "user": None}
    request.state.session_changed = True


def csrf_token(request: Request) -> str:
    token: str = request.state.session["csrf"]
    return token


def check_csrf(request: Request, submitted: str) -> None:
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (TypeError, a 500 before).
    expected = csrf_token(request).encode()
    if not submitted or not hmac.compare_digest(submitted.encode("utf-8", "replace"), expected):
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong; reload the page and try again")


def current_user(request: Request) -> User:
    session = request.state.session
    username = session.get("user")
    if not username:
        raise NotLoggedIn()
    db: Database = request.app.state.db
    account = active_account(db, username)
    if account is None or session.get("ver") != account.session_version or not account.sites:
        end_session(request)  # the cookie is replaced by an anonymous one
        raise NotLoggedIn()
    return User(username, account.sites, account.role)


def require_site(user: User, site: str) -> None:
    """404 for a site the user does not belong to: the page does not exist for them."""
    if site not in user.sites:
        raise HTTPException(status_code=404, detail="not found")
