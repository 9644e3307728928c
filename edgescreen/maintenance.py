"""Periodic upkeep: compact device outboxes and apply the collector database's retention.

Run by edgescreen-maintenance.timer. Each outbox is checkpointed (the WAL folded back into the file and
truncated) and vacuumed (free pages returned to the disk); a device that is running keeps its outbox open,
so a busy outbox is reported and left for the next run rather than waited on. Nothing queued is touched:
only free space is reclaimed.

Retention deletes scores, their flattened metric values, dead letters and resolved alerts older than the
cut-off; open alerts, the device registry and user accounts are kept.

On the host that holds the site PKI, each site's CRL is re-signed once less than half its validity is left
(an expired CRL makes the broker refuse every client), the broker's copies are refreshed and the broker is
reloaded, which rereads the CRL (Mosquitto does on SIGHUP).
"""

from __future__ import annotations

import logging
import shlex
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.engine import make_url

from collector.storage import open_database, schema
from collector.timeutil import utcnow_naive
from contract.errors import EdgeScreenError
from edgescreen.broker_files import broker_files_stale, refresh_broker_files
from edgescreen.provision import ProvisionError, sites, write_acl

log = logging.getLogger(__name__)

OUTBOX_PATTERNS = ("outbox*.sqlite", "*/outbox*.sqlite")
BUSY_TIMEOUT_MS = 5000
RELOAD_BROKER = "systemctl reload mosquitto"  # its ExecReload= sends SIGHUP, which rereads the CRL and ACL
RELOAD_TIMEOUT_S = 60


class MaintenanceError(EdgeScreenError, RuntimeError):
    """A maintenance step could not run (state folder missing, database unreachable...)."""


@dataclass(frozen=True)
class OutboxReport:
    path: Path
    depth: int | None  # messages waiting; None when the file could not be read
    dropped: int | None  # messages ever dropped because the outbox was full
    bytes_before: int
    bytes_after: int
    error: str | None = None  # the file could not be read as an outbox
    skipped: str | None = None  # readable but not compacted this time (a device was writing)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class RetentionReport:
    cutoff: str
    deleted: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CrlReport:
    site: str
    next_update_before: str | None  # None when the CRL could not be read
    next_update: str | None
    renewed: bool
    error: str | None = None


@dataclass(frozen=True)
class CrlRenewal:
    sites: list[CrlReport]
    broker_files: list[Path]  # folders whose CRL and ACL were refreshed
    reloaded: bool
    error: str | None = None  # the broker's copies or the reload failed

    @property
    def ok(self) -> bool:
        return self.error is None and all(s.error is None for s in self.sites)


def find_outboxes(state_dir: Path) -> list[Path]:
    """Outbox files directly in the state folder or one level down (one folder per profile instance)."""
    if not state_dir.is_dir():
        raise MaintenanceError(f"--state-dir {state_dir} is not a folder")
    found = {p for pattern in OUTBOX_PATTERNS for p in state_dir.glob(pattern) if p.is_file()}
    return sorted(found)


def _size(path: Path) -> int:
    """The file and its WAL: what the outbox takes on disk."""
    total = 0
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            continue
    return total


def compact_outbox(path: Path) -> OutboxReport:
    """Checkpoint and vacuum one outbox; report its depth. Errors are reported, not raised."""
    before = _size(path)
    depth: int | None = None
    dropped: int | None = None
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        return OutboxReport(path, None, None, before, before, f"cannot open: {exc}")
    try:
        try:
            (depth,) = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            row = db.execute("SELECT value FROM meta WHERE name = 'dropped'").fetchone()
            dropped = int(row[0]) if row else 0
        except sqlite3.Error as exc:
            return OutboxReport(path, None, None, before, before, f"not an outbox: {exc}")
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            # A device writing at this moment holds the lock; its queued rows are untouched either way.
            return OutboxReport(path, int(depth), dropped, before, _size(path), skipped=f"not compacted: {exc}")
    finally:
        db.close()
    return OutboxReport(path, int(depth), dropped, before, _size(path))


def apply_retention(db_url: str, retain_days: int, dead_letter_days: int) -> RetentionReport:
    """Delete collector rows older than the cut-offs, in one transaction. Returns rows deleted per table."""
    if retain_days < 1 or dead_letter_days < 1:
        raise MaintenanceError("retention must be at least 1 day")
    now = utcnow_naive()
    cutoff = now - timedelta(days=retain_days)
    dead_cutoff = now - timedelta(days=dead_letter_days)
    try:
        db = open_database(db_url)
    except Exception as exc:
        raise MaintenanceError(f"cannot open --db {db_url!r}: {exc}") from exc
    deleted: dict[str, int] = {}
    try:
        with db.engine.begin() as conn:
            statements = {
                "metric_values": delete(schema.metric_values).where(schema.metric_values.c.at < cutoff),
                "scores": delete(schema.scores).where(schema.scores.c.window_end < cutoff),
                "dead_letters": delete(schema.dead_letters).where(schema.dead_letters.c.received_at < dead_cutoff),
                "alerts": delete(schema.alerts).where(
                    schema.alerts.c.state == "resolved", schema.alerts.c.resolved_at < cutoff
                ),
            }
            for table, stmt in statements.items():
                deleted[table] = int(conn.execute(stmt).rowcount or 0)
        if db.dialect == "sqlite":
            _checkpoint_sqlite(make_url(db.url).database or "")
    except Exception as exc:
        raise MaintenanceError(f"retention on {db.dialect} database failed: {exc}") from exc
    finally:
        db.dispose()
    log.info("retention: deleted %s (cut-off %s)", deleted, cutoff.isoformat())
    return RetentionReport(cutoff=cutoff.isoformat(timespec="seconds"), deleted=deleted)


def _checkpoint_sqlite(path: str) -> None:
    """Fold the collector's WAL back into its file; a collector reading at the moment just makes it partial."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.info("collector database busy: WAL checkpoint was partial")
    finally:
        conn.close()


def renew_crls(pki_root: Path, reload_command: str | None = RELOAD_BROKER) -> CrlRenewal:
    """Re-sign every site CRL under `pki_root` that is due, refresh the broker's copies, reload the broker.

    The ACL is regenerated from the registries too, so that the rules of an upgraded release reach the broker.
    The copies are refreshed (and the broker reloaded) when a CRL was re-signed or a copy differs from the PKI,
    as after an upgrade or a run whose copy failed. `reload_command` None leaves the reload to the caller.
    """
    if not pki_root.is_dir():
        raise MaintenanceError(f"--pki {pki_root} is not a folder")
    reports = []
    for pki in sites(pki_root):
        before: str | None = None
        try:
            before = pki.crl_dates()[1].isoformat(timespec="seconds")
            due = pki.crl_due()
        except ProvisionError as exc:
            log.warning("site %s: %s; signing a new one", pki.site, exc)
            due = True
        if not due:
            reports.append(CrlReport(pki.site, before, before, renewed=False))
            continue
        try:
            pki.write_crl()
            after = pki.crl_dates()[1].isoformat(timespec="seconds")
        except ProvisionError as exc:
            reports.append(CrlReport(pki.site, before, None, renewed=False, error=str(exc)))
            continue
        log.info("site %s: CRL renewed, next update %s (was %s)", pki.site, after, before)
        reports.append(CrlReport(pki.site, before, after, renewed=True))
    try:
        write_acl(pki_root)
        if not any(r.renewed for r in reports) and not broker_files_stale(pki_root):
            return CrlRenewal(reports, [], reloaded=False)
        dests = refresh_broker_files(pki_root)
    except (ProvisionError, OSError) as exc:
        return CrlRenewal(reports, [], reloaded=False, error=f"the broker's copies were not refreshed: {exc}")
    if not dests or reload_command is None:
        return CrlRenewal(reports, dests, reloaded=False)
    error = _reload_broker(reload_command)
    return CrlRenewal(reports, dests, reloaded=error is None, error=error)


def _reload_broker(command: str) -> str | None:
    """Run the reload command; None when it worked, else what went wrong."""
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=RELOAD_TIMEOUT_S, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return f"the broker did not reload (`{command}`: {exc})"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        tail = f": {detail[-1]}" if detail else ""
        return f"the broker did not reload (`{command}` exited with {done.returncode}){tail}"
    log.info("broker reloaded (%s)", command)
    return None
