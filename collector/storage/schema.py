"""Tables of the collector database. Times are naive UTC in every dialect (SQLite keeps no zone)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
    text,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime, nullable=False),
)

# Every valid device message, stored once. The idempotency key is the device's own (site, device_id, message_id):
# a device cannot take another's message ids (schema version 4; before, message_id alone).
scores = Table(
    "scores",
    metadata,
    Column("message_id", String(36), nullable=False),
    Column("site", String(63), nullable=False),
    Column("device_id", String(63), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("window_end", DateTime, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("label", String(32), nullable=True),  # gait: predicted class
    Column("outcome", String(32), nullable=True),  # gait: walk-through outcome
    Column("payload", Text, nullable=False),  # the validated JSON exactly as received
    PrimaryKeyConstraint("site", "device_id", "message_id", name="scores_pkey"),
)
# What the dashboard reads scores by. (Schema version 1 also indexed site, device, window_end; no query used
# it and each message paid for it, so version 3 drops it.)
Index("ix_scores_site_kind_time", scores.c.site, scores.c.kind, scores.c.window_end)

# Numbers flattened out of each message (e.g. cva_deg.mean), for trend plots and aggregates. Keyed by series
# and time, which is how every reader asks; on SQLite the table is that key's b-tree itself (WITHOUT ROWID), so
# a metric row costs one b-tree insert instead of a table row plus a series index entry (schema version 2).
metric_values = Table(
    "metric_values",
    metadata,
    Column("message_id", String(36), nullable=False),
    Column("site", String(63), nullable=False),
    Column("device_id", String(63), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("name", String(112), nullable=False),
    Column("value", Float, nullable=False),
    PrimaryKeyConstraint("site", "device_id", "name", "at", "message_id", name="metric_values_pkey"),
    sqlite_with_rowid=False,
)

devices = Table(
    "devices",
    metadata,
    Column("site", String(63), primary_key=True),
    Column("device_id", String(63), primary_key=True),
    Column("role", String(16), nullable=True),
    Column("state", String(16), nullable=False, server_default="unknown"),
    Column("state_at", DateTime, nullable=True),
    Column("first_seen", DateTime, nullable=False),
    Column("last_seen", DateTime, nullable=False),
    Column("last_heartbeat", DateTime, nullable=True),
    Column("fps", Float, nullable=True),  # the slowest stage
    Column("fps_stages", Text, nullable=True),  # JSON object stage -> fps
    Column("outbox_depth", BigInteger, nullable=True),
    Column("outbox_dropped", BigInteger, nullable=True),
    Column("frames_dropped", BigInteger, nullable=True),
    Column("camera_state", String(16), nullable=True),
    Column("backend", String(32), nullable=True),
    Column("models", Text, nullable=True),  # JSON list of {name, sha256}
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("received_at", DateTime, nullable=False),
    Column("topic", String(256), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("detail", String(500), nullable=False),
    Column("payload_size", Integer, nullable=False),
    # The first 2,048 bytes as text: valid UTF-8 as received, NUL and bytes that are not UTF-8 written \xNN
    # (writes.dead_letter_payload), so that any payload is storable, PostgreSQL included.
    Column("payload", Text, nullable=False),
)

reject_counts = Table(
    "reject_counts",
    metadata,
    Column("reason", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("last_at", DateTime, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("site", String(63), nullable=False),
    Column("device_id", String(63), nullable=True),
    Column("rule", String(48), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("summary", String(500), nullable=False),
    Column("dedup_key", String(200), nullable=False),
    Column("opened_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("acknowledged_at", DateTime, nullable=True),
    Column("acknowledged_by", String(64), nullable=True),
    Column("resolved_at", DateTime, nullable=True),
    Column("resolved_by", String(64), nullable=True),
)
# At most one unresolved alert per incident, even with several collectors raising it at once.
Index(
    "ux_alerts_open_dedup",
    alerts.c.dedup_key,
    unique=True,
    sqlite_where=text("state != 'resolved'"),
    postgresql_where=text("state != 'resolved'"),
)
Index("ix_alerts_site_state", alerts.c.site, alerts.c.state, alerts.c.opened_at)

# Per rule and subject (device, day, ...): hysteresis state, accumulated time, cool-down clock.
alert_state = Table(
    "alert_state",
    metadata,
    Column("rule", String(48), primary_key=True),
    Column("subject", String(200), primary_key=True),
    Column("active", Boolean, nullable=False),
    Column("period", String(32), nullable=False),
    Column("accumulated_s", Float, nullable=False),
    Column("last_at", DateTime, nullable=True),
    Column("last_value", Float, nullable=True),
    Column("last_fired_at", DateTime, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
    # A session is valid while its cookie holds this number; raising it ends every session of the user
    # (logout, new password, disable). Schema version 5.
    Column("session_version", BigInteger, nullable=False, server_default=text("0")),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    # What the user may see beyond aggregates (collector/users.py ROLES): "staff" sees released aggregates
    # only; "nurse" also sees the screening follow-up list (single walk-throughs). Schema version 6.
    Column("role", String(16), nullable=False, server_default="staff"),
)

user_sites = Table(
    "user_sites",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("site", String(63), primary_key=True),
)

# Screening follow-up: each change of a positive walk-through's status, never updated or deleted (the audit
# trail); the current status is the latest row. The walk-through is the scores row (site, device_id,
# message_id). Schema version 6.
followup_events = Table(
    "followup_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("site", String(63), nullable=False),
    Column("device_id", String(63), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("status", String(16), nullable=False),  # referred | not_needed | done
    Column("changed_by", String(64), nullable=False),
    Column("changed_at", DateTime, nullable=False),
)
Index("ix_followup_events_walk", followup_events.c.site, followup_events.c.device_id, followup_events.c.message_id)
