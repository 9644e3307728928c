"""What the dashboard releases about gait screening: counts on a fixed grid of closed calendar weeks.

Why a fixed grid: counts per day over a window of the viewer's choosing could be differenced (the export
for `days=N+1` minus the one for `days=N` is one day's counts, suppressed cells included), and a week still
filling up could be differenced against itself from one day to the next. So:

- A row is one calendar week, Monday 00:00 to Monday 00:00 **UTC** (the collector keeps no site time zone).
- A week is released only once it is closed and RELEASE_DELAY has passed, and it counts only the
  walk-throughs that reached the collector before then. A booth that delivers a backlog later changes no
  released number; those walk-throughs stay in the database and in no aggregate.
- Each week is suppressed on its own (its classes and its total), with no totals across weeks: a total
  over the viewer's window would change with the window and give one week back by subtraction. A week's
  released cells are therefore the same in every window and at every later time.

`days` only chooses which weeks are listed: every released week from the one holding `now - days` on,
and none that starts more than MAX_WEEKS weeks before the current one. Retention (`edgescreen maintenance
--retain-days`, 365 by default) deletes walk-throughs day by day, so a week it has started to delete would
lose a day's count each night; with the cap, every listed week starts less than 365 days ago. A shorter
retention needs `days` kept below it (see docs/security.md).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from collector.storage.engine import Database
from collector.web import queries
from collector.web.suppression import SuppressedTable, suppress
from edge.roles.gait.message import GaitClass, GaitOutcome  # the screening page shows the gait role

CLASSES: tuple[str, ...] = typing.get_args(GaitClass)
NOT_SCREENED: tuple[str, ...] = tuple(o for o in typing.get_args(GaitOutcome) if o != "screened")
# What staff read for each reason a walk-through got no class. Never "screened": a walk-through that was
# measured but not classed (a booth without a gait model) has its own row, `UNCLASSIFIED`.
REASON_WORDS: dict[str, str] = {
    "partial_walk": "walked only part of the way",
    "multiple_people": "more than one person in view",
    "standing_still": "stood still",
    "wrong_direction": "walked the wrong way",
    "too_few_cycles": "too few steps to measure",
    "poor_view": "body not clearly in view",
}
UNCLASSIFIED = "measured_no_class"
UNCLASSIFIED_WORDS = "measured, no class (booth without a gait model)"
CLASS_WORDS: dict[str, str] = {"negative": "negative", "neutral": "neutral", "positive": "positive"}
# Whole days, because whether a walk-through arrived in time is decided on its arrival date.
RELEASE_DELAY = timedelta(days=2)
MAX_WEEKS = 51


@dataclass(frozen=True)
class ScreeningRelease:
    weeks: list[date]  # Mondays, oldest first
    classes: SuppressedTable  # weeks x screened class, with a total per week
    outcomes: SuppressedTable  # weeks x reason a walk-through was not screened, with a total per week
    unclassified: SuppressedTable  # weeks x one column: measured but given no class (no gait model)
    next_release: datetime  # when the next week is released (UTC)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def release_time(monday: date) -> datetime:
    return datetime.combine(monday + timedelta(weeks=1), datetime.min.time()) + RELEASE_DELAY


def released_weeks(now: datetime, days: int) -> list[date]:
    weeks = []
    oldest = week_start(now.date()) - timedelta(weeks=MAX_WEEKS)
    monday = max(week_start((now - timedelta(days=days)).date()), oldest)
    while release_time(monday) <= now:
        weeks.append(monday)
        monday += timedelta(weeks=1)
    return weeks


def release(db: Database, site: str, now: datetime, days: int, k: int) -> ScreeningRelease:
    weeks = released_weeks(now, days)
    index = {w: i for i, w in enumerate(weeks)}
    classes = [[0] * len(CLASSES) for _ in weeks]
    outcomes = [[0] * len(NOT_SCREENED) for _ in weeks]
    unclassified = [[0] for _ in weeks]
    if weeks:
        start = datetime.combine(weeks[0], datetime.min.time())
        end = datetime.combine(weeks[-1] + timedelta(weeks=1), datetime.min.time())
        for day, received_day, outcome, label, n in queries.gait_counts(db, site, start, end):
            monday = week_start(date.fromisoformat(day))
            if date.fromisoformat(received_day) >= release_time(monday).date():
                continue  # arrived after its week was released
            row = index[monday]
            if outcome == "screened" and label in CLASSES:
                classes[row][CLASSES.index(label)] += n
            elif outcome == "screened":
                unclassified[row][0] += n
            elif outcome in NOT_SCREENED:
                outcomes[row][NOT_SCREENED.index(outcome)] += n
    labels = [w.isoformat() for w in weeks]
    following = week_start(now.date()) - timedelta(weeks=1)
    while release_time(following) <= now:
        following += timedelta(weeks=1)
    return ScreeningRelease(
        weeks,
        suppress(labels, list(CLASSES), classes, k),
        suppress(labels, list(NOT_SCREENED), outcomes, k),
        suppress(labels, [UNCLASSIFIED], unclassified, k),
        release_time(following),
    )
