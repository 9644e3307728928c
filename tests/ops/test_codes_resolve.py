"""`edgescreen codes resolve`: the nurse's follow-up export gets the roster's names, offline, with the booth's
own HMAC (edge/subject_code.py), and only with the right site secret."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.simulate import gait
from collector.storage import open_database
from collector.users import add_user
from edge.subject_code import subject_token
from edgescreen.cli import main
from tests.support.storage import store_batch
from tests.support.web import PASSWORD, logged_in

SECRET = b"school-a site secret, 32 bytes.."


def test_resolve_names_the_followup_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roster = tmp_path / "students.csv"
    roster.write_text("code,name,class\nS-1001,Ada Lovelace,7B\nS-1002,Alan Turing,7C\nS-1003,Grace Hopper,8A\n")
    secret = tmp_path / "site.key"
    secret.write_bytes(SECRET + b"\n")  # a trailing newline, as editors leave it: the booth drops it too
    db = open_database(f"sqlite:///{tmp_path}/c.db")
    now = datetime.now(UTC)
    # Codes as a QR reader types them: the booth normalises (NFC, surrounding spaces) before hashing.
    entered = {"S-1002 ": "positive", "S-1003": "positive", "S-9999": "positive", "S-1001": "negative"}
    walks = [
        gait("school-a", "booth-1", i, now - timedelta(hours=i + 1), predicted=cls, p=0.9).model_copy(
            update={"subject": subject_token(code, SECRET)}
        )
        for i, (code, cls) in enumerate(entered.items())
    ]
    walks.append(gait("school-a", "booth-1", 9, now, predicted="positive", p=0.9))  # no code entered
    with db.engine.begin() as conn:
        store_batch(conn, db, walks)
    add_user(db, "nora", PASSWORD, ["school-a"], "nurse")
    export = logged_in(db, "nora").get("/sites/school-a/export/followup.csv")
    db.dispose()
    followup = tmp_path / "followup.csv"
    followup.write_text(export.text)
    assert "Turing" not in export.text and "S-1002" not in export.text, "the collector holds neither names nor codes"

    out = tmp_path / "named.csv"
    args = ["codes", "resolve", "--roster", str(roster), "--secret-file", str(secret), "--out", str(out)]
    assert main([*args, str(followup)]) == 0
    assert (
        "4 row(s), 2 matched a roster student, 1 code(s) not on the roster, 1 without a code" in capsys.readouterr().out
    )
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[:5] == ["walked_at_utc", "booth", "student_code", "name", "class"]
    assert sorted(r["name"] for r in rows if r["name"]) == ["Alan Turing", "Grace Hopper"]
    assert all(r["name"] != "Ada Lovelace" for r in rows), "a negative screening is on no follow-up list"

    wrong = tmp_path / "other.key"
    wrong.write_bytes(b"another site's secret, 32 bytes.")
    assert main([*args[:-3], str(wrong), "--out", str(out), str(followup)]) == 0
    assert "0 matched" in capsys.readouterr().out, "another site's secret names nobody"

    bad = tmp_path / "bad.csv"
    bad.write_text("student,name\nS-1001,Ada\n")
    assert main(["codes", "resolve", "--roster", str(bad), "--secret-file", str(secret), str(followup)]) == 2
    assert "no column 'code'" in capsys.readouterr().err
