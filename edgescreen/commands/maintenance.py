"""`edgescreen maintenance`: compact device outboxes, apply the collector's retention and renew the site CRLs
(run by a timer)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import EdgeScreenError, UsageError

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    help_text = (
        "checkpoint and vacuum device outboxes, report their depth, apply the database retention, "
        "and renew the site CRLs before they expire"
    )
    p = groups.top.add_parser("maintenance", help=help_text, description=help_text)
    p.add_argument("--state-dir", type=Path, help="folder holding outbox.sqlite or <profile>/outbox.sqlite")
    p.add_argument(
        "--pki",
        type=Path,
        help="site PKI folder: re-sign each CRL once half its validity is gone, refresh the broker's copies "
        "and reload the broker",
    )
    p.add_argument(
        "--reload-broker",
        default="systemctl reload mosquitto",
        metavar="COMMAND",
        help="how to make the broker reread the CRL after a renewal (default: systemctl reload mosquitto)",
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

    report: dict[str, Any] = {"outboxes": [], "retention": None, "crl": None}
    # Steps that failed while the others went on: reported together, once everything that could run has run.
    problems: list[str] = []
    if args.state_dir is None and args.pki is None and not (args.db or os.environ.get("DB_URL")):
        raise UsageError("nothing to do: give --state-dir, --pki or --db")
    if args.pki is not None:
        problems += _renew_crls(args, report)
    try:
        outboxes = find_outboxes(args.state_dir) if args.state_dir is not None else []
    except MaintenanceError as exc:
        raise EdgeScreenError(str(exc)) from exc
    for path in outboxes:
        r = compact_outbox(path)
        if r.error is not None:
            problems.append(f"{r.path}: {r.error}")
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
        if not args.json and r.error is None:
            state = f"skipped ({r.skipped})" if r.skipped else f"{r.bytes_before} -> {r.bytes_after} bytes"
            print(f"{r.path}: depth {r.depth}, dropped {r.dropped}, {state}")
    if not outboxes and args.state_dir is not None and not args.json:
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
    if problems:
        raise EdgeScreenError("; ".join(problems))
    return 0


def _renew_crls(args: argparse.Namespace, report: dict[str, Any]) -> list[str]:
    """Renew the CRLs under --pki; fills report["crl"] and returns what failed."""
    from edgescreen.maintenance import MaintenanceError, renew_crls

    try:
        renewal = renew_crls(args.pki, args.reload_broker or None)
    except MaintenanceError as exc:
        return [str(exc)]
    report["crl"] = {
        "sites": [
            {
                "site": r.site,
                "next_update_before": r.next_update_before,
                "next_update": r.next_update,
                "renewed": r.renewed,
                "error": r.error,
            }
            for r in renewal.sites
        ],
        "broker_files": [str(d) for d in renewal.broker_files],
        "reloaded": renewal.reloaded,
        "error": renewal.error,
    }
    problems = [f"site {r.site}: the CRL was not renewed: {r.error}" for r in renewal.sites if r.error is not None]
    for r in renewal.sites:
        if r.error is None and not args.json:
            state = f"CRL renewed, next update {r.next_update}" if r.renewed else f"CRL valid until {r.next_update}"
            print(f"site {r.site}: {state}")
    if not args.json:
        for dest in renewal.broker_files:
            print(f"broker files updated in {dest}" + (", broker reloaded" if renewal.reloaded else ""))
    if renewal.error is not None:
        problems.append(renewal.error)
    return problems
