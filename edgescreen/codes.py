"""Turning the follow-up list's student codes back into students, offline at the school.

The booth sends only `subject_token(code, site secret)` (edge/subject_code.py); the collector never holds the
secret. Here, on a school computer that has the roster and the secret, each roster student's token is
computed with the same function the booth uses, and the follow-up list (the collector's
/sites/SITE/export/followup.csv) gets the roster's columns for each code that matches.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from contract.errors import EdgeScreenError, UsageError
from edge.config import SecretRef, read_secret
from edge.subject_code import subject_token

log = logging.getLogger(__name__)
CODE_COLUMN = "code"
FOLLOWUP_CODE_COLUMN = "student_code"


class CodesError(EdgeScreenError):
    """A roster or follow-up list that cannot be read as asked."""


@dataclass(frozen=True)
class Resolution:
    rows: int
    matched: int
    unmatched: int  # rows with a code that no roster student has
    anonymous: int  # rows without a code (walk-throughs with no code entered)


def _read_csv(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CodesError(f"{what} {path}: cannot read it ({exc})") from exc


def roster_tokens(
    roster: Path, secret: bytes, code_column: str = CODE_COLUMN
) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The roster's other columns, and token -> that student's row."""
    columns, rows = _read_csv(roster, "roster")
    if code_column not in columns:
        raise UsageError(f"roster {roster}: no column {code_column!r} (columns: {', '.join(columns) or 'none'})")
    others = [c for c in columns if c != code_column]
    tokens: dict[str, dict[str, str]] = {}
    for line, row in enumerate(rows, start=2):
        code = (row.get(code_column) or "").strip()
        if not code:
            log.warning("roster %s line %d: no code, skipped", roster, line)
            continue
        tokens[subject_token(code, secret)] = {c: row.get(c) or "" for c in others}
    return others, tokens


def resolve(followup: Path, roster: Path, secret_file: Path, out: Path, code_column: str = CODE_COLUMN) -> Resolution:
    """Write `out`: the follow-up list with the roster's columns after each row's student code."""
    secret = read_secret(SecretRef(file=secret_file), "--secret-file")
    others, tokens = roster_tokens(roster, secret, code_column)
    columns, rows = _read_csv(followup, "follow-up list")
    if FOLLOWUP_CODE_COLUMN not in columns:
        raise UsageError(f"follow-up list {followup}: no column {FOLLOWUP_CODE_COLUMN!r}; is it followup.csv?")
    clash = [c for c in others if c in columns]
    if clash:
        raise UsageError(f"roster {roster}: column {clash[0]!r} is also a column of the follow-up list; rename it")
    at = columns.index(FOLLOWUP_CODE_COLUMN) + 1
    header = [*columns[:at], *others, *columns[at:]]
    matched = unmatched = anonymous = 0
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            token = (row.get(FOLLOWUP_CODE_COLUMN) or "").strip()
            student = tokens.get(token)
            if not token:
                anonymous += 1
            elif student is None:
                unmatched += 1
            else:
                matched += 1
            writer.writerow({**row, **(student or dict.fromkeys(others, ""))})
    return Resolution(len(rows), matched, unmatched, anonymous)
