"""The device page over a long range draws a bounded number of points per series and keeps the extremes.

Before, a page over 366 days read every stored metric row (300k rows: 3.3 s, and four at once took 16 s
and +330 MiB). Now the database buckets long series: per bucket the mean (the line) and the minimum and
maximum (the band), so a spike of one window still shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.simulate import status
from collector.storage import Database, open_database, schema
from collector.timeutil import utcnow_naive
from collector.users import add_user
from collector.web.queries import MAX_BUCKETS, device_series
from tests.support.storage import store_batch
from tests.support.web import PASSWORD, logged_in

SITE, DEVICE = "school-a", "desk-1"
STEP = timedelta(minutes=15)
PEAK, DIP = 500.0, -200.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/c.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    database = open_database(url)
    add_user(database, "alice", PASSWORD, [SITE])
    with database.engine.begin() as conn:
        store_batch(conn, database, [status(SITE, DEVICE, 0, datetime.now(UTC), role="posture")])
    yield database
    database.dispose()


def fill_year(db: Database, now: datetime) -> tuple[datetime, datetime]:
    """366 days of two series every 15 minutes (35k windows each), with one spike and one dip."""
    start = now - timedelta(days=366) + timedelta(hours=1)
    n = int((now - start) / STEP)
    peak_at, dip_at = start + STEP * (n // 3), start + STEP * (2 * n // 3)
    rows = []
    for i in range(n):
        at = start + STEP * i
        cva = PEAK if at == peak_at else DIP if at == dip_at else 50.0 + (i % 96) / 10
        for name, value in (("cva_deg.mean", cva), ("fps.pipeline", 12.0 + i % 3)):
            rows.append(
                {"message_id": f"m{i}", "site": SITE, "device_id": DEVICE, "kind": "posture", "at": at,
                 "name": name, "value": value}
            )  # fmt: skip
    with db.engine.begin() as conn:
        conn.execute(schema.metric_values.insert(), rows)
    return peak_at, dip_at


def test_a_year_of_windows_comes_back_as_bounded_buckets_with_the_extremes(db: Database) -> None:
    now = utcnow_naive()
    peak_at, dip_at = fill_year(db, now)
    series = device_series(db, SITE, DEVICE, now - timedelta(days=366), now)
    assert set(series) == {"cva_deg.mean", "fps.pipeline"}
    for name, s in series.items():
        assert 0 < len(s.points) <= MAX_BUCKETS and len(s.band) == len(s.points), name
        assert [t for t, _ in s.points] == sorted(t for t, _ in s.points)
    cva = series["cva_deg.mean"]
    assert max(hi for _, _, hi in cva.band) == PEAK and min(lo for _, lo, _ in cva.band) == DIP
    peak_bucket = next(t for t, _, hi in cva.band if hi == PEAK)
    width = timedelta(days=366) / MAX_BUCKETS
    assert abs(peak_bucket - peak_at) <= width, "the spike is drawn where it happened"
    assert max(v for _, v in cva.points) < PEAK, "the line is the bucket means; the band holds the spike"
    # A short range is not bucketed: every window is its own point.
    day = device_series(db, SITE, DEVICE, now - timedelta(hours=6), now)
    assert len(day["fps.pipeline"].points) == 6 * 4 and not day["fps.pipeline"].band
    assert dip_at < now - timedelta(hours=6)


def test_device_page_over_366_days_draws_bounded_points_and_the_spike(db: Database) -> None:
    now = utcnow_naive()
    fill_year(db, now)
    alice = logged_in(db, "alice", clock=lambda: now)
    page = alice.get(f"/sites/{SITE}/devices/{DEVICE}?days=366")
    assert page.status_code == 200
    html = page.text
    lines = [
        " ".join(re.findall(r"[\d.]+,[\d.]+", d)) for d in re.findall(r'<path d="([^"]+)"[^>]*class="series"', html)
    ]
    bands = re.findall(r'<polygon points="([^"]+)"[^>]*class="band"', html)
    assert len(lines) == 2 and len(bands) == 2, "a mean line and a min-max band per series"
    for points in lines + bands:
        assert 0 < len(points.split()) <= 1000
    cva_chart = next(svg for svg in html.split("<svg")[1:] if "cva_deg.mean" in svg)
    y_ticks = [float(v) for v in re.findall(r'class="tick" text-anchor="end">([-\d.]+)<', cva_chart)]
    assert max(y_ticks) >= PEAK and min(y_ticks) <= DIP, "the axis reaches the spike and the dip"
