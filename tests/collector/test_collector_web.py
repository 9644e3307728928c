"""Dashboard over HTTP (httpx TestClient): login, cookie flags, CSRF, site isolation, charts, CSV exports."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path

import pytest
from sqlalchemy import select

from collector.simulate import gait, headpose, heartbeat, posture, status
from collector.storage import Database, open_database, schema
from collector.timeutil import to_naive_utc, utcnow_naive
from collector.users import add_user
from collector.web.screening import week_start
from collector.web.suppression import determined_cells, suppress, to_csv_rows
from contract.wire import DeviceMessage
from tests.support.storage import store_batch
from tests.support.web import PASSWORD, client_for, csrf, logged_in


def store(db: Database, *messages: DeviceMessage, received_at: datetime | None = None) -> None:
    with db.engine.begin() as conn:
        store_batch(conn, db, messages, received_at=received_at)


def open_alert(db: Database, site: str, device: str) -> str:
    alert_id = str(uuid.uuid4())
    now = utcnow_naive()
    with db.engine.begin() as conn:
        conn.execute(
            schema.alerts.insert().values(
                alert_id=alert_id, site=site, device_id=device, rule="gait_positive", severity="warning",
                state="open", summary=f"positive screening at {device}", dedup_key=alert_id, opened_at=now,
                updated_at=now,
            )
        )  # fmt: skip
    return alert_id


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = seeded(f"sqlite:///{tmp_path}/c.db")
    yield database
    database.dispose()


def seeded(url: str) -> Database:
    database = open_database(url)
    now = datetime.now(UTC)
    messages: list[DeviceMessage] = [
        status("school-a", "booth-1", 0, now, role="gait"),
        heartbeat("school-a", "booth-1", 1, now),
    ]
    seq = 2
    # Three days of screenings in a closed week two weeks back (released: see collector/web/screening.py).
    # Positives are few every day (3 + 2 + 1 = 6 in the week, a small cell); the other classes are large.
    monday = datetime.combine(week_start(now.date()) - timedelta(weeks=2), datetime.min.time(), tzinfo=UTC)
    for day, (neg, neu, pos) in enumerate([(30, 12, 3), (25, 14, 2), (40, 11, 1)]):
        end = monday + timedelta(days=day, hours=10)
        walks = []
        for cls, n in (("negative", neg), ("neutral", neu), ("positive", pos)):
            for _ in range(n):
                walks.append(gait("school-a", "booth-1", seq, end, predicted=cls, p=0.8))
                seq += 1
        store(database, *walks, received_at=to_naive_utc(end) + timedelta(minutes=1))
    for i in range(30):
        messages.append(posture("school-a", "desk-1", i, now - timedelta(minutes=30 - i), cva=50 - i % 7))
        messages.append(
            headpose("school-a", "station-1", i, now - timedelta(hours=30 - i), yaw=5 + i % 4, rotation=i % 3)
        )
    messages.append(posture("school-b", "desk-9", 0, now))
    store(database, *messages)
    add_user(database, "alice", PASSWORD, ["school-a"])
    add_user(database, "bob", PASSWORD, ["school-b"])
    return database


def test_login_is_required_and_checks_password_and_csrf(db: Database) -> None:
    client = client_for(db)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    token = csrf(client)
    first = client_for(db).get("/login").headers["set-cookie"]
    assert "Secure" in first and "HttpOnly" in first and "SameSite=strict" in first
    assert client.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 403
    wrong = client.post("/login", data={"username": "alice", "password": "nope-nope-nope", "csrf_token": token})
    assert wrong.status_code == 401 and "wrong password" in wrong.text
    unknown = {"username": "mallory", "password": PASSWORD, "csrf_token": token}
    assert client.post("/login", data=unknown).status_code == 401
    good = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    assert client.post("/login", data=good, follow_redirects=False).status_code == 303
    assert "Fleet" in client.get("/").text
    # The token from before login no longer works after it (session rotated on login).
    assert client.post("/logout", data={"csrf_token": token}).status_code == 403
    assert client.post("/logout", data={"csrf_token": csrf(client, "/")}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_users_see_only_their_sites(db: Database) -> None:
    alice, bob = logged_in(db, "alice"), logged_in(db, "bob")
    alert_id = open_alert(db, "school-a", "booth-1")
    fleet_a, fleet_b = alice.get("/").text, bob.get("/").text
    assert "booth-1" in fleet_a and "desk-9" not in fleet_a
    assert "desk-9" in fleet_b and "booth-1" not in fleet_b
    assert alert_id in alice.get("/alerts").text and alert_id not in bob.get("/alerts").text
    for path in (
        "/sites/school-a/devices/booth-1",
        "/sites/school-a/screening",
        "/sites/school-a/headpose",
        "/sites/school-a/export/screening.csv",
        "/sites/school-a/export/headpose.csv",
    ):
        assert alice.get(path).status_code == 200, path
        assert bob.get(path).status_code == 404, path
    token = csrf(bob, "/")
    assert bob.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token}).status_code == 404
    assert bob.post(f"/alerts/{alert_id}/resolve", data={"csrf_token": token}).status_code == 404
    assert alice.get("/sites/school-a/devices/no-such-device").status_code == 404


def test_acknowledge_and_resolve_need_csrf(db: Database) -> None:
    alice = logged_in(db, "alice")
    alert_id = open_alert(db, "school-a", "booth-1")
    assert alice.post(f"/alerts/{alert_id}/acknowledge", data={}).status_code == 403
    assert alice.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": "forged"}).status_code == 403
    token = csrf(alice, "/alerts")
    assert alice.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token}).status_code == 200
    with db.reader.connect() as conn:
        row = conn.execute(select(schema.alerts).where(schema.alerts.c.alert_id == alert_id)).mappings().one()
    assert row["state"] == "acknowledged" and row["acknowledged_by"] == "alice"
    assert alice.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token}).status_code == 409
    assert alice.post(f"/alerts/{alert_id}/resolve", data={"csrf_token": token}).status_code == 200
    assert alert_id not in alice.get("/alerts").text and alert_id in alice.get("/alerts?show=all").text


def test_pages_draw_charts(db: Database) -> None:
    alice = logged_in(db, "alice")
    desk = alice.get("/sites/school-a/devices/desk-1").text
    assert desk.count("<svg") >= 2 and "cva_deg.mean" in desk
    paths = re.findall(r'<path d="([^"]+)"[^>]*class="series"', desk)
    assert any(len(re.findall(r"[\d.]+,[\d.]+", d)) == 30 for d in paths), "one point per stored window"
    screening = alice.get("/sites/school-a/screening").text
    tips = re.findall(r"<title>[\d-]+ (\w+): (\d+)</title>", screening)
    assert ("negative", "95") in tips and ("suppressed", "43") in tips, tips
    assert "positive" in screening
    headpose_page = alice.get("/sites/school-a/headpose").text
    assert "station-1: daily mean head angles" in headpose_page and 'class="series"' in headpose_page
    booth = alice.get("/sites/school-a/devices/booth-1").text
    assert "Camera frame rate" in booth


def test_screening_export_suppresses_small_and_revealing_cells(db: Database) -> None:
    alice = logged_in(db, "alice")
    response = alice.get("/sites/school-a/export/screening.csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["week_start", "negative", "neutral", "positive", "total"]
    body = {r[0]: r[1:] for r in rows[1:]}
    week = (week_start(utcnow_naive().date()) - timedelta(weeks=2)).isoformat()
    assert body[week] == ["95", "", "", "138"], "6 < 11 is blank, and the next smallest so 138 - 95 cannot give it"
    assert all(values == ["0", "0", "0", "0"] for w, values in body.items() if w != week), "weeks with no walk"
    assert "total" not in body, "no total over the window: it would change with the window"


def test_suppression_leaves_nothing_derivable_by_subtraction() -> None:
    counts = [[30, 12, 3, 0], [25, 14, 20, 1], [40, 11, 15, 12], [9, 50, 50, 50]]
    table = suppress(["a", "b", "c", "d"], ["w", "x", "y", "z"], counts, k=11, column_totals=True)
    n = 4
    hidden = table.suppressed
    for r, c in product(range(n + 1), range(n + 1)):
        value = table.value(r, c)
        if 0 < value < 11:
            assert hidden[r][c], f"cell {r},{c} = {value} should be blank"
    for line in [[(r, c) for c in range(n + 1)] for r in range(n + 1)] + [
        [(r, c) for r in range(n + 1)] for c in range(n + 1)
    ]:
        assert sum(hidden[r][c] for r, c in line) != 1, f"line {line} would give its blank back by subtraction"
    assert determined_cells(table) == []
    csv_rows = to_csv_rows(table, "group")
    assert len(csv_rows) == 6 and csv_rows[-1][0] == "total"
    tiny = suppress(["a"], ["x", "y"], [[4, 5]], k=11)
    assert all(v == "" for v in to_csv_rows(tiny, "g")[1][1:])


def test_headpose_export_blanks_days_under_k(db: Database) -> None:
    alice = logged_in(db, "alice")
    rows = list(csv.reader(io.StringIO(alice.get("/sites/school-a/export/headpose.csv").text)))
    assert rows[0] == ["device", "day", "windows", "mean_severity_total"]
    assert rows[1:], "one row per device and day"
    for _device, _day, windows, mean in rows[1:]:
        assert (windows == "" and mean == "") or int(windows) >= 11


@pytest.mark.postgres
def test_pages_and_exports_on_postgresql(pg_url: str) -> None:
    database = seeded(pg_url)
    try:
        test_pages_draw_charts(database)
        test_screening_export_suppresses_small_and_revealing_cells(database)
        test_headpose_export_blanks_days_under_k(database)
    finally:
        database.dispose()


def test_chart_axes_have_distinct_labels_and_daily_ticks() -> None:
    from collector.web.charts import line_chart

    days = [datetime(2026, 1, d) for d in (1, 2, 3)]
    svg = str(line_chart({"severity": list(zip(days, [1.8, 2.0, 2.0], strict=True))}, "daily"))
    y_labels = re.findall(r'class="tick" text-anchor="end">([^<]+)<', svg)
    x_labels = re.findall(r'class="tick" text-anchor="middle">([^<]+)<', svg)
    assert len(set(y_labels)) == len(y_labels) >= 3, y_labels
    assert x_labels == ["Thu 01 Jan", "Fri 02 Jan", "Sat 03 Jan"]
    ticks = [datetime.fromisoformat(t) for t in re.findall(r'class="axis xtick" data-t="([^"]+)"', svg)]
    assert ticks == days, "one tick per midnight"
    assert len(re.findall(r"<circle ", svg)) == 3


def test_user_add_from_the_command_line_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgescreen.cli import main

    db_url = f"sqlite:///{tmp_path}/c.db"

    def add(password_file: Path) -> int:
        return main(
            ["collector", "user", "add", "--db", db_url, "--site", "s1", "--password-file", str(password_file), "ann"]
        )

    missing = tmp_path / "nope"
    assert add(missing) == 2
    assert f"--password-file {missing}: cannot read it" in capsys.readouterr().err
    assert not (tmp_path / "c.db").exists(), "nothing is created before the password is read"
    short = tmp_path / "short"
    short.write_text("tiny\n")
    assert add(short) == 1
    assert "shorter than 10 characters" in capsys.readouterr().err
    good = tmp_path / "good"
    good.write_text(PASSWORD + "\n")
    assert add(good) == 0
    assert "user ann can see: s1" in capsys.readouterr().out
