"""The screening follow-up list: only the nurse role sees it, each status change is kept with who and when,
and its CSV carries the booth's pseudonymous codes (on SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.simulate import gait
from collector.storage import Database, open_database
from collector.users import add_user
from collector.web.followup import CSV_COLUMNS
from tests.support.storage import store_batch
from tests.support.web import PASSWORD, csrf, logged_in

SITE = "school-a"
TOKEN = "ab" * 32


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/c.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    database = open_database(url)
    now = datetime.now(UTC)
    walks = [
        gait(SITE, "booth-1", 0, now - timedelta(hours=3), predicted="positive", p=0.9).model_copy(
            update={"subject": TOKEN}
        ),
        gait(SITE, "booth-1", 1, now - timedelta(hours=2), predicted="negative", p=0.9),
        gait(SITE, "booth-1", 2, now - timedelta(hours=1), predicted="positive", p=0.8),  # no code entered
        gait("school-b", "booth-9", 0, now, predicted="positive", p=0.95),
    ]
    with database.engine.begin() as conn:
        store_batch(conn, database, walks)
    add_user(database, "alice", PASSWORD, [SITE])
    add_user(database, "nora", PASSWORD, [SITE], "nurse")
    add_user(database, "nick", PASSWORD, [SITE], "nurse")
    add_user(database, "bea", PASSWORD, ["school-b"], "nurse")
    yield database
    database.dispose()


def rows(html: str) -> list[str]:
    body = re.search(r'<table id="followup">(.*?)</table>', html, re.S)
    assert body, "the follow-up table"
    return re.findall(r'<tr class="followup" id="f-([^"]+)">', body.group(1))


def test_only_the_nurse_role_sees_single_walk_throughs(db: Database) -> None:
    alice = logged_in(db, "alice")
    for path in (f"/sites/{SITE}/followup", f"/sites/{SITE}/export/followup.csv"):
        assert alice.get(path).status_code == 404, f"staff see aggregates only: {path}"
    assert "follow-up" not in alice.get("/").text
    nora = logged_in(db, "nora")
    page = nora.get(f"/sites/{SITE}/followup")
    assert page.status_code == 200
    assert len(rows(page.text)) == 2, "the two positives of the site, not the negative, not another site's"
    assert TOKEN[:12] in page.text and "none (anonymous walk)" in page.text
    assert logged_in(db, "bea").get(f"/sites/{SITE}/followup").status_code == 404, "another site's nurse"


def test_status_changes_are_audited_and_exported(db: Database) -> None:
    nora = logged_in(db, "nora")
    first = rows(nora.get(f"/sites/{SITE}/followup").text)[-1]  # oldest: the one with a code
    url = f"/sites/{SITE}/followup/booth-1/{first}"
    token = csrf(nora, f"/sites/{SITE}/followup")
    assert nora.post(url, data={"status": "referred"}, follow_redirects=False).status_code == 403, "CSRF"
    assert nora.post(url, data={"status": "lost", "csrf_token": token}).status_code == 400
    missing = f"/sites/{SITE}/followup/booth-1/00000000-0000-0000-0000-000000000000"
    assert nora.post(missing, data={"status": "done", "csrf_token": token}).status_code == 404
    answer = nora.post(url, data={"status": "referred", "csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    nick = logged_in(db, "nick")
    nick.post(url, data={"status": "done", "csrf_token": csrf(nick, f"/sites/{SITE}/followup")})
    audit = re.search(r'<table id="audit">(.*?)</table>', nick.get(f"/sites/{SITE}/followup").text, re.S)
    assert audit
    changes = re.findall(
        r"<td>[\d: -]+</td><td>(\w+)</td><td>booth-1</td><td><code>\w+</code></td><td>([\w ]+)</td>", audit.group(1)
    )
    assert changes == [("nick", "done"), ("nora", "referred")], "every change, newest first, with who made it"
    export = nick.get(f"/sites/{SITE}/export/followup.csv")
    assert export.headers["content-type"].startswith("text/csv") and export.headers["cache-control"] == "no-store"
    table = list(csv.DictReader(io.StringIO(export.text)))
    assert list(table[0]) == list(CSV_COLUMNS)
    coded = next(r for r in table if r["student_code"] == TOKEN)
    assert coded["status"] == "done" and coded["changed_by"] == "nick" and coded["booth"] == "booth-1"
    assert next(r for r in table if r["student_code"] == "")["status"] == "", "undecided"


def test_existing_users_get_the_staff_role(tmp_path: Path) -> None:
    """Schema 6 adds the role to users created before it: they see aggregates only."""
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path}/old.db"
    database = open_database(url)
    add_user(database, "old", PASSWORD, [SITE], "nurse")
    with database.engine.begin() as conn:
        conn.execute(text("ALTER TABLE users DROP COLUMN role"))
        conn.execute(text("DROP TABLE followup_events"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version = 6"))
    database.dispose()
    database = open_database(url)
    try:
        client = logged_in(database, "old")
        assert client.get(f"/sites/{SITE}/followup").status_code == 404
    finally:
        database.dispose()
