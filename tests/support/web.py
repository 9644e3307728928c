"""The dashboard as the tests drive it: the real FastAPI app behind Starlette's test client."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import httpx
from fastapi.testclient import TestClient

from collector.storage import Database
from collector.web.app import create_app

PASSWORD = "correct horse battery"
SECRET = b"k" * 32


def client_for(db: Database, *, k: int = 11, clock: Callable[[], datetime] | None = None) -> TestClient:
    app = create_app(db, SECRET, secure_cookies=True, k_anonymity=k, clock=clock)
    return TestClient(app, base_url="https://testserver")


def csrf(client: httpx.Client, path: str = "/login") -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def log_in(client: TestClient, username: str, password: str = PASSWORD) -> int:
    """Post the login form; returns the status code (303 on success)."""
    data = {"username": username, "password": password, "csrf_token": csrf(client)}
    return client.post("/login", data=data, follow_redirects=False).status_code


def logged_in(db: Database, username: str, **options: object) -> TestClient:
    client = client_for(db, **options)  # type: ignore[arg-type]
    status = log_in(client, username)
    assert status == 303, f"login of {username} gave {status}"
    return client
