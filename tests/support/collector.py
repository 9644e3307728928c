"""The collector as systemd runs it: `edgescreen collector run` in a process of its own."""

from __future__ import annotations

import sys


def collector_cmd(broker_url: str, db_url: str, client_id: str, *options: str) -> list[str]:
    """The command line of a collector on `broker_url` storing into `db_url`, with further options."""
    run = [sys.executable, "-m", "edgescreen", "collector", "run", "--broker", broker_url, "--db", db_url]
    return [*run, "--client-id", client_id, *options]
