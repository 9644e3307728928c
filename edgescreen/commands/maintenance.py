"""`edgescreen maintenance`: compact device outboxes and apply the collector's retention (run by a timer)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import EdgeScreenError

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    help_text = "checkpoint and vacuum device outboxes, report their depth, and apply the database retention"
    p = groups.top.add_parser("maintenance", help=help_text, description=help_text)
    p.add_argument(
        "--state-dir", type=Path, required=True, help="folder holding outbox.sqlite or <profile>/outbox.sqlite"
    )
    p.add_argument(
        "--db",
        help="collector database (sqlite:///path or postgresql://…); retention is applied to it "
        "(default: $DB_URL, which /etc/edgescreen/collector.env sets on a collector host)",
    )
    p.add_argument("--retain-days", type=int, default=365, help="keep scores and resolved alerts this long (365)")
    p.add_argument("--dead-letter-days", type=int, default=30, help="keep refused payloads this long (30)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edgescreen.maintenance import MaintenanceError, apply_retention, compact_outbox, find_outboxes

    report: dict[str, Any] = {"outboxes": [], "retention": None}
    failed = False
    try:
        outboxes = find_outboxes(args.state_dir)
    except MaintenanceError as exc:
        raise EdgeScreenError(str(exc)) from exc
    for path in outboxes:
        r = compact_outbox(path)
        failed |= r.error is not None
        report["outboxes"].append(
            {
                "path": str(r.path),
                "depth": r.depth,
                "dropped": r.dropped,
                "bytes_before": r.bytes_before,
                "bytes_after": r.bytes_after,
                "error": r.error,
                "skipped": r.skipped,
            }
        )
        if not args.json:
            if r.error is not None:
                print(f"{r.path}: error: {r.error}")
            else:
                state = f"skipped ({r.skipped})" if r.skipped else f"{r.bytes_before} -> {r.bytes_after} bytes"
                print(f"{r.path}: depth {r.depth}, dropped {r.dropped}, {state}")
    if not outboxes and not args.json:
        print(f"no outbox under {args.state_dir}")
    # The timer's unit reads collector.env: on a collector host the retention applies without being asked for.
    db_url = args.db or os.environ.get("DB_URL")
    if db_url:
        try:
            retention = apply_retention(db_url, args.retain_days, args.dead_letter_days)
        except MaintenanceError as exc:
            raise EdgeScreenError(str(exc)) from exc
        report["retention"] = {"cutoff": retention.cutoff, "deleted": retention.deleted}
        if not args.json:
            counts = ", ".join(f"{table} {n}" for table, n in retention.deleted.items())
            print(f"retention (older than {retention.cutoff}): deleted {counts}")
    if args.json:
        print(json.dumps(report, indent=2))
    return 1 if failed else 0
