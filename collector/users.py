"""Dashboard users: argon2 password hashes and site membership."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from collector.storage import schema
from collector.storage.engine import Database
from collector.timeutil import utcnow_naive
from contract.errors import EdgeScreenError

_HASHER = PasswordHasher()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_SITE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MIN_PASSWORD = 10


class UserError(EdgeScreenError, ValueError):
    """A user that cannot be created as asked."""


def add_user(db: Database, username: str, password: str, sites: list[str]) -> None:
    if not _NAME.match(username):
        raise UserError(f"username {username!r}: letters, digits and _.@- only, at most 64")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password for {username!r} is shorter than {MIN_PASSWORD} characters")
    bad = [s for s in sites if not _SITE.match(s)]
    if bad:
        raise UserError(f"site {bad[0]!r} is not a site id (lower-case letters, digits, _ and -)")
    hashed = _HASHER.hash(password)
    with db.engine.begin() as conn:
        conn.execute(delete(schema.user_sites).where(schema.user_sites.c.username == username))
        conn.execute(delete(schema.users).where(schema.users.c.username == username))
        conn.execute(schema.users.insert().values(username=username, password_hash=hashed, created_at=utcnow_naive()))
        conn.execute(schema.user_sites.insert(), [{"username": username, "site": s} for s in sorted(set(sites))])


def verify_user(db: Database, username: str, password: str) -> list[str] | None:
    """The user's sites when the password is right, else None."""
    with db.reader.connect() as conn:
        row = conn.execute(select(schema.users.c.password_hash).where(schema.users.c.username == username)).first()
        if row is None:
            _HASHER.hash(password)  # same work as a real check, so timing does not reveal unknown names
            return None
        try:
            _HASHER.verify(row[0], password)
        except (VerificationError, InvalidHashError):
            return None
        return user_sites(db, username)


def user_sites(db: Database, username: str) -> list[str]:
    with db.reader.connect() as conn:
        rows = conn.execute(
            select(schema.user_sites.c.site).where(schema.user_sites.c.username == username).order_by("site")
        )
        return [r[0] for r in rows]
