"""Dashboard users: argon2 password hashes, site membership, and the session version that revokes sessions.

A session cookie carries the user's `session_version` from login time; raising the stored version (logout,
a new password, disabling the user) ends every session of that user at once, whoever holds the cookie.
A new user starts at a random version, so a cookie of a deleted user never fits a new one of the same name.

Argon2 takes 64 MiB and four lanes per check, so checks run at most ARGON2_CONCURRENCY at a time: a
burst of logins waits its turn instead of growing the process by 64 MiB per login.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update

from collector.storage import schema
from collector.storage.engine import Database
from collector.timeutil import utcnow_naive
from contract.errors import EdgeScreenError

_HASHER = PasswordHasher()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_SITE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MIN_PASSWORD = 10
# What a user may see beyond released aggregates: "staff" nothing more; "nurse" the screening follow-up list
# (single positive walk-throughs with their pseudonymous student code), which a school nurse needs to act on.
ROLES = ("staff", "nurse")
DEFAULT_ROLE = "staff"
ARGON2_CONCURRENCY = 2
ARGON2_WAIT_S = 30.0
_ARGON2_SLOTS = threading.BoundedSemaphore(ARGON2_CONCURRENCY)


class UserError(EdgeScreenError, ValueError):
    """A user that cannot be created as asked."""


class PasswordCheckBusy(RuntimeError):
    """Every Argon2 slot stayed taken for ARGON2_WAIT_S; the login should be tried again later."""


@dataclass(frozen=True)
class Account:
    username: str
    sites: list[str]
    session_version: int
    role: str = DEFAULT_ROLE


@functools.cache
def _dummy_hash() -> str:
    """What unknown and disabled users are checked against: the same work as a real check, so the time a
    login takes does not tell whether the name exists."""
    return _HASHER.hash(secrets.token_urlsafe(16))


@contextmanager
def _argon2_slot() -> Iterator[None]:
    if not _ARGON2_SLOTS.acquire(timeout=ARGON2_WAIT_S):
        raise PasswordCheckBusy(f"{ARGON2_CONCURRENCY} password checks running for over {ARGON2_WAIT_S:.0f} s")
    try:
        yield
    finally:
        _ARGON2_SLOTS.release()


def add_user(db: Database, username: str, password: str, sites: list[str], role: str = DEFAULT_ROLE) -> None:
    """Create a user, or give an existing one this password, these sites and this role, enable them and end
    their sessions."""
    if role not in ROLES:
        raise UserError(f"role {role!r} for {username!r}: one of {', '.join(ROLES)}")
    if not _NAME.match(username):
        raise UserError(f"username {username!r}: letters, digits and _.@- only, at most 64")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password for {username!r} is shorter than {MIN_PASSWORD} characters")
    bad = [s for s in sites if not _SITE.match(s)]
    if bad:
        raise UserError(f"site {bad[0]!r} is not a site id (lower-case letters, digits, _ and -)")
    with _argon2_slot():
        hashed = _HASHER.hash(password)
    users = schema.users
    with db.engine.begin() as conn:
        changed = conn.execute(
            update(users)
            .where(users.c.username == username)
            .values(password_hash=hashed, disabled=False, role=role, session_version=users.c.session_version + 1)
        )
        if changed.rowcount == 0:
            conn.execute(
                users.insert().values(
                    username=username,
                    password_hash=hashed,
                    created_at=utcnow_naive(),
                    session_version=secrets.randbelow(2**62),
                    disabled=False,
                    role=role,
                )
            )
        conn.execute(delete(schema.user_sites).where(schema.user_sites.c.username == username))
        conn.execute(schema.user_sites.insert(), [{"username": username, "site": s} for s in sorted(set(sites))])


def verify_user(db: Database, username: str, password: str) -> Account | None:
    """The account when the password is right and the user is enabled, else None.

    Raises PasswordCheckBusy when no Argon2 slot frees up in time."""
    users = schema.users
    with db.reader.connect() as conn:
        row = conn.execute(select(users.c.password_hash, users.c.disabled).where(users.c.username == username)).first()
    with _argon2_slot():
        try:
            _HASHER.verify(row[0] if row is not None and not row[1] else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
    if row is None or row[1]:
        return None
    return active_account(db, username)


def active_account(db: Database, username: str) -> Account | None:
    """The account of an enabled user (None for an unknown or disabled one)."""
    users = schema.users
    with db.reader.connect() as conn:
        row = conn.execute(
            select(users.c.session_version, users.c.disabled, users.c.role).where(users.c.username == username)
        ).first()
    if row is None or row[1]:
        return None
    return Account(username, user_sites(db, username), int(row[0]), str(row[2] or DEFAULT_ROLE))


def end_sessions(db: Database, username: str) -> None:
    """Every session of the user ends (logout, here and in every other browser)."""
    users = schema.users
    with db.engine.begin() as conn:
        conn.execute(
            update(users).where(users.c.username == username).values(session_version=users.c.session_version + 1)
        )


def disable_user(db: Database, username: str) -> bool:
    """Refuse the user's logins and end their sessions; False when there is no such user."""
    users = schema.users
    with db.engine.begin() as conn:
        result = conn.execute(
            update(users)
            .where(users.c.username == username)
            .values(disabled=True, session_version=users.c.session_version + 1)
        )
        return result.rowcount == 1


def delete_user(db: Database, username: str) -> bool:
    """Remove the user and their site grants (their sessions end with them); False when there is none."""
    with db.engine.begin() as conn:
        conn.execute(delete(schema.user_sites).where(schema.user_sites.c.username == username))
        result = conn.execute(delete(schema.users).where(schema.users.c.username == username))
        return result.rowcount == 1


def user_sites(db: Database, username: str) -> list[str]:
    with db.reader.connect() as conn:
        rows = conn.execute(
            select(schema.user_sites.c.site).where(schema.user_sites.c.username == username).order_by("site")
        )
        return [r[0] for r in rows]
