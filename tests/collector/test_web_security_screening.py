"""Screening aggregates cannot be undone: the attacks that recovered suppressed cells, tried again.

Two attacks recovered small cells from the old per-day exports: subtracting `screening.csv?days=N` from
`days=N+1` (12 of 16 suppressed cells), and solving a single export's row and column sums (a cell of 4 in
26 of 3,000 random tables). Here an attacker gathers every export over many windows, and over time, writes
each released number down as an equation and solves the whole system (by rank, independently of the
collector's own check, and by linear programming with counts >= 0); no suppressed cell may come back.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from collector.simulate import gait
from collector.storage import Database, open_database
from collector.timeutil import to_aware_utc, utcnow_naive
from collector.users import add_user
from collector.web.screening import (
    CLASS_WORDS,
    CLASSES,
    NOT_SCREENED,
    REASON_WORDS,
    RELEASE_DELAY,
    released_weeks,
    week_start,
)
from collector.web.suppression import determined_cells, suppress
from contract.wire import DeviceMessage
from edge.roles.gait.message import GaitScreening
from tests.support.storage import store_batch
from tests.support.web import PASSWORD, logged_in

K = 11
SITE = "school-a"
WEEKS_OF_DATA = 10
Cell = tuple[str, str]  # (week start, class)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/c.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    database = open_database(url)
    add_user(database, "alice", PASSWORD, [SITE])
    yield database
    database.dispose()


class Booth:
    """Stores walk-throughs as the collector's writer does and remembers what it stored (the truth)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.seq = 0
        self.stored: list[tuple[datetime, datetime, str]] = []  # (window end, received at, class)

    def walk(self, end: datetime, cls: str, received: datetime) -> None:
        self.walks([(end, cls)], received)

    def walks(self, ends: list[tuple[datetime, str]], received: datetime) -> None:
        messages: list[DeviceMessage] = []
        for end, cls in ends:
            message = gait(SITE, "booth-1", self.seq, to_aware_utc(end), predicted=cls if cls in CLASSES else "neutral")
            if cls in NOT_SCREENED:  # a walk-through the booth could not screen, and why
                fields = {**message.model_dump(), "outcome": cls, "predicted": None, "probabilities": None}
                message = GaitScreening.model_validate(fields)
            messages.append(message)
            self.seq += 1
            self.stored.append((end, received, cls))
        with self.db.engine.begin() as conn:
            store_batch(conn, self.db, messages, received_at=received)

    def truth(self, now: datetime) -> dict[Cell, int]:
        """What a released week holds: walk-throughs of a closed week that reached the collector in time."""
        counts: dict[Cell, int] = defaultdict(int)
        for end, received, cls in self.stored:
            monday = week_start(end.date())
            closes = datetime.combine(monday + timedelta(days=7), datetime.min.time()) + RELEASE_DELAY
            if closes <= now and received < closes:
                counts[(monday.isoformat(), cls)] += 1
        return counts


def seed(db: Database, now: datetime) -> Booth:
    """Ten weeks of walk-throughs: many negatives, fewer neutrals, a few positives (often under k), and some
    walk-throughs not screened (partial walks often, two people in view rarely)."""
    rng = np.random.default_rng(7)
    booth = Booth(db)
    first = week_start(now.date()) - timedelta(weeks=WEEKS_OF_DATA)
    for week in range(WEEKS_OF_DATA + 1):
        monday = datetime.combine(first + timedelta(weeks=week), datetime.min.time())
        per_class = {
            "negative": rng.integers(5, 60),
            "neutral": rng.integers(0, 25),
            "positive": rng.integers(0, 8),
            "partial_walk": rng.integers(0, 30),
            "multiple_people": rng.integers(0, 5),
        }
        batch: list[tuple[datetime, str]] = []
        for cls, n in per_class.items():
            for _ in range(int(n)):
                end = monday + timedelta(seconds=int(rng.integers(0, 7 * 86400)))
                if end < now - timedelta(minutes=1):
                    batch.append((end, cls))
        if batch:
            booth.walks(batch, received=max(e for e, _ in batch) + timedelta(seconds=5))
    return booth


def export(client: object, days: int) -> dict[str, list[str]]:
    response = client.get(f"/sites/{SITE}/export/screening.csv?days={days}")  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["week_start", *CLASSES, "total"], rows[0]
    return {r[0]: r[1:] for r in rows[1:]}


def recovered_by_rank(equations: list[dict[str, int]], unknowns: list[str]) -> set[str]:
    """Unknowns whose value the equations fix: e_j lies in the row space (numpy rank, not the collector's code)."""
    if not equations:
        return set()
    index = {u: i for i, u in enumerate(unknowns)}
    a = np.zeros((len(equations), len(unknowns)))
    for row, eq in enumerate(equations):
        for name, coefficient in eq.items():
            a[row, index[name]] = coefficient
    # e_j is in the row space exactly when every null-space vector is zero at j.
    _, singular, vt = np.linalg.svd(a)
    null_space = vt[int((singular > 1e-9).sum()) :]
    return {name for name, j in index.items() if np.all(np.abs(null_space[:, j]) < 1e-9)}


def recovered_by_bounds(equations: list[tuple[dict[str, int], int]], unknowns: list[str]) -> set[str]:
    """Unknowns whose smallest and largest value under the equations and x >= 0 coincide (LP bounds)."""
    index = {u: i for i, u in enumerate(unknowns)}
    a_eq = np.zeros((len(equations), len(unknowns)))
    b_eq = np.zeros(len(equations))
    for row, (eq, rhs) in enumerate(equations):
        for name, coefficient in eq.items():
            a_eq[row, index[name]] = coefficient
        b_eq[row] = rhs
    out = set()
    for name, j in index.items():
        c = np.zeros(len(unknowns))
        c[j] = 1
        lo = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        hi = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        assert lo.status == 0 and hi.status == 0, (lo.message, hi.message)
        if abs(lo.fun + hi.fun) < 0.5:
            out.add(name)
    return out


def attack(exports: list[dict[str, list[str]]]) -> tuple[dict[Cell, int], set[Cell], set[Cell]]:
    """Every released number of every export as one system; returns (known, hidden, recovered)."""
    known: dict[Cell, int] = {}
    lines: list[list[Cell]] = []  # cells + total of one row: sum(cells) - total = 0
    for table in exports:
        for week, values in table.items():
            line = [(week, c) for c in [*CLASSES, "total"]]
            lines.append(line)
            for cell, value in zip(line, values, strict=True):
                if value != "":
                    assert known.setdefault(cell, int(value)) == int(value), f"{cell} differs between exports"
    hidden = {cell for line in lines for cell in line if cell not in known}
    unknowns = sorted(f"{w}|{c}" for w, c in hidden)
    linear: list[dict[str, int]] = []
    with_rhs: list[tuple[dict[str, int], int]] = []
    for line in lines:
        signs = {cell: (-1 if cell[1] == "total" else 1) for cell in line}
        eq = {f"{w}|{c}": s for (w, c), s in signs.items() if (w, c) in hidden}
        rhs = -sum(s * known[cell] for cell, s in signs.items() if cell in known)
        if eq:
            linear.append(eq)
            with_rhs.append((eq, rhs))
    found = recovered_by_rank(linear, unknowns) | recovered_by_bounds(with_rhs, unknowns)
    recovered = {(u.split("|")[0], u.split("|")[1]) for u in found}
    return known, hidden, recovered


def test_overlapping_windows_release_the_same_weeks_and_no_cell_comes_back(db: Database) -> None:
    now = utcnow_naive()
    booth = seed(db, now)
    truth = booth.truth(now)
    alice = logged_in(db, "alice", k=K, clock=lambda: now)
    exports = {days: export(alice, days) for days in range(1, 80)}

    for days, table in exports.items():
        first = week_start((now - timedelta(days=days)).date())
        released = [
            first + timedelta(weeks=i)
            for i in range(60)
            if datetime.combine(first + timedelta(weeks=i + 1), datetime.min.time()) + RELEASE_DELAY <= now
        ]
        assert list(table) == [w.isoformat() for w in released], f"days={days}: the closed weeks since {first}"
        for later in (days + 1, days + 7):
            if later in exports:
                for week, values in table.items():
                    assert exports[later][week] == values, f"days={days} and days={later} differ in week {week}"

    known, hidden, recovered = attack(list(exports.values()))
    assert known and hidden, "the data has released and suppressed cells"
    for (week, cls), value in known.items():
        true = sum(truth.get((week, c), 0) for c in CLASSES) if cls == "total" else truth.get((week, cls), 0)
        assert value == true, f"{week} {cls}: released {value}, stored {true}"
        assert not 0 < value < K, f"{week} {cls}: a group of {value} is released"
    small = {cell for cell, n in truth.items() if cell[1] in CLASSES and 0 < n < K}
    assert small and small <= hidden, "every small cell is suppressed"
    assert not recovered, f"the combined exports give back {sorted(recovered)}"


def test_late_walkthroughs_and_the_open_week_change_no_released_cell(db: Database) -> None:
    now = utcnow_naive()
    booth = seed(db, now)
    alice = logged_in(db, "alice", k=K, clock=lambda: now)
    before = export(alice, 70)
    assert before, "closed weeks are released"
    this_week = datetime.combine(week_start(now.date()), datetime.min.time())
    assert this_week.date().isoformat() not in before, "the open week is not released"
    # A booth that was offline delivers walk-throughs of released weeks late; the open week fills up.
    for week in list(before)[-3:]:
        booth.walk(datetime.fromisoformat(week) + timedelta(days=2), "positive", received=now)
    booth.walks([(max(this_week, now - timedelta(hours=1)), "positive")] * 3, received=now)
    after = export(alice, 70)
    assert after == before, "a release never changes once published"
    # Even much later the same weeks read the same (the open week's own release comes when it closes).
    later = now + timedelta(days=9)
    booth.walk(now - timedelta(minutes=30), "neutral", received=now)
    much_later = export(logged_in(db, "alice", k=K, clock=lambda: later), 79)
    assert {w: v for w, v in much_later.items() if w in before} == before


def test_screening_page_shows_the_released_weeks_and_no_walkthrough(db: Database) -> None:
    now = utcnow_naive()
    booth = seed(db, now)
    latest = now - timedelta(minutes=5)
    booth.walk(latest, "positive", received=now)
    alice = logged_in(db, "alice", k=K, clock=lambda: now)
    page = alice.get(f"/sites/{SITE}/screening?days=70")
    assert page.status_code == 200
    html = page.text
    table = export(alice, 70)
    body = re.search(r'<table id="screening">(.*?)</table>', html, re.S)
    assert body, "the weekly table"
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1))]
    page_rows = {r[0]: ["" if v == "–" else v for v in r[1:5]] for r in cells[1:]}
    assert page_rows == table, "the page shows exactly the cells the export releases"
    # No walk-through of its own: no per-walk table, no time of day, no probability.
    assert "P(positive)" not in html and not re.search(r"\d\d:\d\d</td>", html)
    assert latest.strftime("%Y-%m-%d %H:%M") not in html and week_start(now.date()).isoformat() not in html
    booth_page = alice.get(f"/sites/{SITE}/devices/booth-1?days=7")
    assert booth_page.status_code == 200
    assert "prob." not in booth_page.text, "the booth's page draws no walk-through's class probabilities"
    truth = booth.truth(now)
    quality = re.search(r'<table id="quality">(.*?)</table>', html, re.S)
    assert quality, "the weekly table of walk-throughs not screened"
    rows = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", quality.group(1))]
    assert [r[0] for r in rows[1:]] == list(table), "the same weeks"
    seen_blank = False
    for week, *values in rows[1:]:
        for name, value in zip([*NOT_SCREENED, "total"], values, strict=True):
            true = sum(truth.get((week, o), 0) for o in NOT_SCREENED) if name == "total" else truth.get((week, name), 0)
            seen_blank |= value == "–"
            assert value == "–" or (int(value) == true and not 0 < true < K), (week, name, value, true)
    assert seen_blank, "some reasons were rare enough to be suppressed"
    # Bar tooltips name only released numbers; the grey part is what the blanks sum to, nothing finer.
    for chart, columns in (("by class", CLASSES), ("by reason", NOT_SCREENED)):
        svg = re.search(rf'<svg[^>]*aria-label="[^"]*{chart}"(.*?)</svg>', html, re.S)
        assert svg, chart
        released = table if chart == "by class" else {r[0]: ["" if v == "–" else v for v in r[1:]] for r in rows[1:]}
        ids = {words: key for key, words in {**REASON_WORDS, **CLASS_WORDS, "suppressed": "suppressed"}.items()}
        tips = [(w, ids[n], v) for w, n, v in re.findall(r"<title>(\S+) ([^:<]+): (\d+)</title>", svg.group(1))]
        assert tips, f"the {chart} chart has bars"
        for week, name, value in tips:
            if name == "suppressed":
                shown = sum(int(v) for v in released[week][:-1] if v)
                assert released[week][-1] != "" and int(value) == int(released[week][-1]) - shown
            else:
                assert released[week][columns.index(name)] == value, (chart, week, name, value)


def test_no_listed_week_reaches_back_to_where_retention_deletes() -> None:
    """Retention deletes by day (365 days by default): a week it had begun to delete would shrink each night."""
    for hours in range(0, 14 * 24, 5):
        now = datetime(2026, 3, 2) + timedelta(hours=hours)
        weeks = released_weeks(now, 366)
        assert datetime.combine(weeks[0], datetime.min.time()) > now - timedelta(days=365), (now, weeks[0])
        assert len(weeks) >= 50, "still about a year of weeks"


def _random_table(rng: np.random.Generator) -> list[list[int]]:
    rows = int(rng.integers(2, 8))
    pool = np.array([0, 0, 1, 2, 3, 4, 5, 7, 9, 12, 15, 20, 30, 45, 60])
    return [[int(v) for v in rng.choice(pool, 3)] for _ in range(rows)]


def _recovered_cells(counts: list[list[int]], hidden: list[list[bool]]) -> set[tuple[int, int]]:
    """Row and column sums (with their totals) as equations over the blank cells: which are fixed?"""
    n_rows, n_cols = len(counts), len(counts[0])
    names = [f"{r},{c}" for r in range(n_rows + 1) for c in range(n_cols + 1) if hidden[r][c]]
    lines = [[(r, c) for c in range(n_cols + 1)] for r in range(n_rows + 1)]
    lines += [[(r, c) for r in range(n_rows + 1)] for c in range(n_cols + 1)]
    equations = []
    for line in lines:
        *parts, total = line
        eq = {f"{r},{c}": 1 for r, c in parts if hidden[r][c]}
        if hidden[total[0]][total[1]]:
            eq[f"{total[0]},{total[1]}"] = -1
        if eq:
            equations.append(eq)
    return {(int(n.split(",")[0]), int(n.split(",")[1])) for n in recovered_by_rank(equations, names)}


def test_random_tables_give_no_blank_back_from_row_and_column_sums() -> None:
    rng = np.random.default_rng(2024)
    primary_only = protected = 0
    for _ in range(3000):
        counts = _random_table(rng)
        table = suppress([str(i) for i in range(len(counts))], ["a", "b", "c"], counts, k=K, column_totals=True)
        values = [[table.value(r, c) for c in range(4)] for r in range(len(counts) + 1)]
        small = [[0 < v < K for v in row] for row in values]
        if any(map(any, small)) and not all(map(all, small)):
            primary_only += bool(_recovered_cells(counts, small))
        for r, row in enumerate(values):
            for c, v in enumerate(row):
                assert not (0 < v < K) or table.suppressed[r][c], f"{counts}: {v} at {r},{c} is released"
        recovered = _recovered_cells(counts, table.suppressed)
        assert not recovered, f"{counts}: blanks {sorted(recovered)} follow from the sums"
        protected += any(map(any, table.suppressed))
    # The attack works: blanking only the small cells gives some of them back in many tables.
    assert primary_only > 100, primary_only
    assert protected > 1000


def test_the_check_catches_a_blank_that_every_line_rule_misses() -> None:
    """Two blocks of four blanks joined by one blank: each line holds two or more, yet the joint is fixed."""
    big = 40
    counts = [[big] * 4 for _ in range(4)]
    for r, c in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)]:
        counts[r][c] = 3
    unchecked = [[0 < v < K for v in row] + [False] for row in counts] + [[False] * 5]
    assert _recovered_cells(counts, unchecked) == {(1, 2)}, "the attack recovers the joint"
    table = suppress(list("abcd"), list("wxyz"), counts, k=K, column_totals=True)
    assert determined_cells(table) == []
    assert not _recovered_cells(counts, table.suppressed)
    assert table.suppressed[1][2]
