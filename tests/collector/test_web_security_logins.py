"""Dashboard logins and sessions under attack: guessing, floods of logins, stolen cookies, bad tokens.

What a red-team pass found: no limit on login attempts; Argon2 with unbounded concurrency (24 parallel
logins took the collector from 445 to 1,402 MiB); a session cookie that still worked after logout and
after a password change; no way to disable or delete a user; a non-ASCII CSRF token answered 500.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from collector.storage import Database, open_database, schema
from collector.storage.migrations import MIGRATIONS
from collector.users import ARGON2_CONCURRENCY, add_user
from collector.web.app import create_app
from collector.web.auth import COOKIE
from collector.web.throttle import LoginThrottle
from tests.support.broker import free_port
from tests.support.web import PASSWORD, SECRET, client_for, csrf, log_in, logged_in

USER_SESSIONS_VERSION = next(m.version for m in MIGRATIONS if "session" in m.description)


class FakeClock:
    """Monotonic seconds that the test moves forward, so that backoff is tested without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/c.db" if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


def _with_users(url: str) -> Database:
    database = open_database(url)
    add_user(database, "alice", PASSWORD, ["school-a"])
    add_user(database, "bob", PASSWORD, ["school-a"])
    return database


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """On SQLite and PostgreSQL: for what the stored user decides (sessions, disable, delete, migration)."""
    database = _with_users(db_url)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """SQLite only: for what happens before or around the database (throttle, Argon2, tokens)."""
    database = _with_users(f"sqlite:///{tmp_path}/c.db")
    yield database
    database.dispose()


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts real Argon2 verifications, and the most that ran at the same moment."""
    counts = {"calls": 0, "running": 0, "peak": 0}
    guard = threading.Lock()
    real = argon2.PasswordHasher.verify

    def counted(self: argon2.PasswordHasher, *args: Any, **kwargs: Any) -> Any:
        with guard:
            counts["calls"] += 1
            counts["running"] += 1
            counts["peak"] = max(counts["peak"], counts["running"])
        try:
            return real(self, *args, **kwargs)
        finally:
            with guard:
                counts["running"] -= 1

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counted)
    return counts


def throttled_client(db: Database, clock: FakeClock, address: str = "203.0.113.7") -> TestClient:
    app = create_app(db, SECRET, k_anonymity=11, login_throttle=LoginThrottle(clock=clock))
    return TestClient(app, base_url="https://testserver", client=(address, 50000))


def attempt(client: TestClient, username: str, password: str) -> httpx.Response:
    data = {"username": username, "password": password, "csrf_token": csrf(client)}
    return client.post("/login", data=data, follow_redirects=False)


def test_wrong_passwords_lock_the_account_with_growing_backoff(
    sqlite_db: Database, verifications: dict[str, int]
) -> None:
    clock = FakeClock()
    client = throttled_client(sqlite_db, clock)
    for _ in range(LoginThrottle.ACCOUNT_FREE):
        assert attempt(client, "alice", "wrong password!").status_code == 401
    locked = attempt(client, "alice", PASSWORD)
    assert locked.status_code == 429, "even the right password waits out the lock"
    first_wait = int(locked.headers["retry-after"])
    assert first_wait >= 1 and "try again in" in locked.text
    checked = verifications["calls"]
    for _ in range(20):
        assert attempt(client, "alice", PASSWORD).status_code == 429
    assert verifications["calls"] == checked, "a locked login costs no Argon2 work"
    # Another account from another address is not held up by alice's lock.
    assert attempt(throttled_client(sqlite_db, clock, "198.51.100.9"), "bob", PASSWORD).status_code == 303
    clock.now += first_wait
    assert attempt(client, "alice", "wrong again!!").status_code == 401
    second = attempt(client, "alice", PASSWORD)
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 2 * first_wait, "the lock doubles"
    clock.now += int(second.headers["retry-after"])
    assert attempt(client, "alice", PASSWORD).status_code == 303, "the right password after the wait"
    assert attempt(client, "alice", "one slip is not a lock").status_code == 401
    assert attempt(client, "alice", PASSWORD).status_code == 303, "success cleared the account's failures"


def test_one_address_guessing_across_accounts_is_held_back(sqlite_db: Database) -> None:
    clock = FakeClock()
    guesser = throttled_client(sqlite_db, clock)
    names = [f"user{i}" for i in range(LoginThrottle.ADDRESS_FREE)]
    for name in names:  # one guess per name: no account reaches its own limit
        assert attempt(guesser, name, "password123!").status_code == 401
    held = attempt(guesser, "alice", PASSWORD)
    assert held.status_code == 429, "the address is locked, whatever account it tries"
    same_app = TestClient(guesser.app, base_url="https://testserver", client=("192.0.2.44", 50000))
    assert attempt(same_app, "alice", PASSWORD).status_code == 303, "alice from her own address is not"
    clock.now += int(held.headers["retry-after"])
    assert attempt(guesser, "bob", PASSWORD).status_code == 303


def test_parallel_logins_run_argon2_a_few_at_a_time(sqlite_db: Database, verifications: dict[str, int]) -> None:
    """24 logins at once against the real server: at most ARGON2_CONCURRENCY verifications run together."""
    users = ["alice", "bob"] * 12
    port = free_port()
    app = create_app(sqlite_db, SECRET, secure_cookies=False)  # plain HTTP on loopback
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    base = f"http://127.0.0.1:{port}"

    def login(name: str) -> int:
        with httpx.Client(base_url=base) as http:
            token = csrf(http, "/login")
            data = {"username": name, "password": PASSWORD, "csrf_token": token}
            return http.post("/login", data=data, timeout=60).status_code

    try:
        start = threading.Barrier(len(users))

        def together(name: str) -> int:
            start.wait()
            return login(name)

        with ThreadPoolExecutor(len(users)) as pool:
            codes = list(pool.map(together, users))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert codes == [303] * len(users), codes
    assert verifications["calls"] == len(users)
    assert 1 <= verifications["peak"] <= ARGON2_CONCURRENCY, verifications


def _cookie(client: TestClient) -> str:
    value = client.cookies.get(COOKIE)
    assert value
    return value


def _with_cookie(db: Database, cookie: str) -> TestClient:
    client = client_for(db)
    client.cookies.set(COOKIE, cookie)
    return client


def _is_in(client: TestClient) -> bool:
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200


def test_logout_ends_the_session_for_whoever_kept_the_cookie(db: Database) -> None:
    alice = logged_in(db, "alice")
    stolen = _cookie(alice)
    assert _is_in(_with_cookie(db, stolen)), "a copy of the cookie works while the session lives"
    assert alice.post("/logout", data={"csrf_token": csrf(alice, "/")}, follow_redirects=False).status_code == 303
    assert not _is_in(alice)
    assert not _is_in(_with_cookie(db, stolen)), "the copied cookie dies with the logout"
    assert _is_in(logged_in(db, "alice")), "logging in again works"


def test_a_new_password_ends_every_session(db: Database) -> None:
    alice = logged_in(db, "alice")
    other_browser = logged_in(db, "alice")
    bob = logged_in(db, "bob")
    add_user(db, "alice", "a brand new password", ["school-a"])
    assert not _is_in(alice) and not _is_in(other_browser)
    assert _is_in(bob), "other users keep their sessions"
    assert log_in(client_for(db), "alice") == 401, "the old password is refused"
    assert log_in(client_for(db), "alice", "a brand new password") == 303


def cli(*args: str) -> int:
    from edgescreen.cli import main

    return main(["collector", "user", *args])


def test_user_disable_and_delete_from_the_command_line(
    db: Database, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = logged_in(db, "alice"), logged_in(db, "bob")
    assert cli("disable", "--db", db_url, "alice") == 0
    assert "alice is disabled" in capsys.readouterr().out
    assert not _is_in(alice), "a disabled user's sessions end at once"
    assert log_in(client_for(db), "alice") == 401, "and they cannot log in"
    assert _is_in(bob)
    assert cli("delete", "--db", db_url, "bob") == 0
    assert "bob is deleted" in capsys.readouterr().out
    assert not _is_in(bob) and log_in(client_for(db), "bob") == 401
    with db.reader.connect() as conn:
        assert not conn.execute(select(schema.user_sites).where(schema.user_sites.c.username == "bob")).all()
        assert not conn.execute(select(schema.users).where(schema.users.c.username == "bob")).all()
    for command in ("disable", "delete"):
        assert cli(command, "--db", db_url, "mallory") == 1
        assert capsys.readouterr().err.strip() == "error: no user 'mallory'"
    # A user added again under a deleted name does not inherit a session cookie of the old one.
    add_user(db, "bob", PASSWORD, ["school-a"])
    assert not _is_in(bob)
    # `user add` sets a new password and enables a disabled user again.
    add_user(db, "alice", PASSWORD, ["school-a"])
    assert log_in(client_for(db), "alice") == 303


@pytest.mark.parametrize("token", ["é", "ÿ" * 43, "\u200b", "🔑"])
def test_a_non_ascii_csrf_token_is_refused_not_a_server_error(sqlite_db: Database, token: str) -> None:
    client = TestClient(create_app(sqlite_db, SECRET), base_url="https://testserver", raise_server_exceptions=False)
    client.get("/login")
    login = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    assert login.status_code == 403
    alice = logged_in(sqlite_db, "alice")
    assert alice.post("/logout", data={"csrf_token": token}).status_code == 403


def test_undecodable_form_and_cookie_bytes_are_refused_not_a_server_error(sqlite_db: Database) -> None:
    client = TestClient(create_app(sqlite_db, SECRET), base_url="https://testserver", raise_server_exceptions=False)
    client.get("/login")
    form = b"username=alice&password=x&csrf_token=%FF%FE%ED%A0%80"
    headers = {"content-type": "application/x-www-form-urlencoded"}
    assert client.post("/login", content=form, headers=headers).status_code == 403
    raw = TestClient(create_app(sqlite_db, SECRET), base_url="https://testserver", raise_server_exceptions=False)
    for cookie in ("é".encode("latin-1"), "🔑".encode(), b"\xff\xfe"):
        response = raw.get("/", headers={b"cookie": COOKIE.encode() + b"=" + cookie}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"


def test_a_database_from_before_session_versions_is_migrated_and_old_cookies_end(db_url: str) -> None:
    database = open_database(db_url)
    add_user(database, "alice", PASSWORD, ["school-a"])
    old_cookie = _cookie(logged_in(database, "alice"))
    # Take the database back to before the user columns existed.
    with database.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE users DROP COLUMN session_version")
        conn.exec_driver_sql("ALTER TABLE users DROP COLUMN disabled")
        versions = schema.schema_migrations.c.version
        conn.execute(schema.schema_migrations.delete().where(versions >= USER_SESSIONS_VERSION))
    database.dispose()
    migrated = open_database(db_url)
    try:
        with migrated.reader.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("users")}
        assert {"session_version", "disabled"} <= columns
        assert log_in(client_for(migrated), "alice") == 303, "users keep their passwords"
        assert not _is_in(_with_cookie(migrated, old_cookie))
    finally:
        migrated.dispose()
