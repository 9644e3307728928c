"""Collector ingest throughput through a real Mosquitto, next to a bare `mosquitto_sub` draining the same stream.

N simulated devices publish a mixed stream (posture windows, gait screenings, heartbeats) at QoS 1 while
both subscribers are offline with persistent sessions, so the broker holds two identical queues. Then,
in turn, a bare `mosquitto_sub -q 1` drains its queue and the collector drains its own (validate, store
in SQLite or PostgreSQL, acknowledge after commit). Prints a markdown table, and per database a comment with
the CPU time per stored message of the ingest process, of its writer process and of Mosquitto.

    python benchmarks/collector_ingest.py [--devices 20] [--per-device 1000] [--pg postgresql://…]

With `--receipts-rounds N` it measures what the delivery receipts cost instead: SQLite only, N rounds, each
round one run with receipts (the default) and one without, alternating so that the machine's load falls on
both alike; it prints every run and the median rate of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from collector.ingest import Ingestor, IngestSettings
from collector.service import CollectorService, ServiceSettings
from collector.simulate import Publisher, mixed_stream
from collector.storage import open_database, schema

TOPIC = "edgescreen/v1/+/+/+"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def bare_sub(port: int, client_id: str, count: int | None) -> list[str]:
    cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1", "-c", "-i", client_id]
    cmd += ["-x", "3600", "-t", TOPIC]
    return cmd + (["-C", str(count)] if count else ["-E"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            out += [int(child), *descendants(int(child))]
    return out


def cpu_snapshot(broker_pid: int) -> dict[str, float]:
    """CPU seconds of this (ingest) process, of the collector's child processes (its writer; with --workers,
    the other ingest processes and their writers too) and of Mosquitto."""
    children = [p for p in descendants(os.getpid()) if p != broker_pid]
    return {
        "ingest process": time.process_time(),
        "child processes": sum(cpu_seconds(p) for p in children),
        "mosquitto": cpu_seconds(broker_pid),
    }


def publish(url: str, devices: int, per_device: int) -> int:
    streams = [mixed_stream("bench", f"dev-{d:03d}", per_device, seed=d) for d in range(devices)]

    def send(d: int) -> None:
        pub = Publisher(url, f"sim-{d}-{uuid.uuid4().hex[:6]}")
        pub.publish_all(streams[d], timeout=600)
        pub.close()

    threads = [threading.Thread(target=send, args=(d,)) for d in range(devices)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(len(s) for s in streams)


def run_one(
    label: str, db_url: str, workdir: Path, args: argparse.Namespace, receipts: bool = True
) -> tuple[str, int, float, float]:
    devices, per_device, workers = args.devices, args.per_device, args.workers
    proc, port = start_broker(workdir)
    url = f"mqtt://127.0.0.1:{port}"
    try:
        db = open_database(db_url)
        collector_id, bare_id = f"bench-collector-{label}", f"bench-bare-{label}"
        share = collector_id if workers > 1 else None
        # Register every ingest session (and the bare one) so that the broker queues the stream for them.
        for i in range(workers):
            client_id = collector_id if i == 0 else f"{collector_id}-w{i}"
            ingestor = Ingestor(IngestSettings(url, client_id, share_group=share), db)
            ingestor.start()
            ingestor.wait_connected()
            time.sleep(0.3)
            ingestor.stop()
        subprocess.run(bare_sub(port, bare_id, None), check=True, capture_output=True)
        total = publish(url, devices, per_device)

        start = time.perf_counter()
        subprocess.run(bare_sub(port, bare_id, total), check=True, stdout=subprocess.DEVNULL)
        bare_rate = total / (time.perf_counter() - start)

        service = CollectorService(
            ServiceSettings(
                broker_url=url, db_url=db_url, client_id=collector_id, share_group=share, workers=workers,
                rules_path=args.rules,
            )
        )  # fmt: skip
        service.ingestor.settings.receipts = receipts  # read after each commit
        service.start()
        # Timed from the first committed batch, so that process start-up is not counted as ingest.
        stored, first = 0, None
        while stored < total:
            time.sleep(0.01)
            with db.reader.connect() as conn:
                stored = int(conn.execute(select(func.count()).select_from(schema.scores)).scalar() or 0)
            if stored and first is None:
                first = (time.perf_counter(), stored, cpu_snapshot(proc.pid))
        assert first is not None
        elapsed = time.perf_counter() - first[0]
        cpu = cpu_snapshot(proc.pid)
        stats = service.ingestor.stats
        service.stop()
        if receipts:
            assert stats.receipts > 0, "no receipt was published"
        n = total - first[1]
        per_message = ", ".join(f"{k} {(cpu[k] - first[2][k]) / n * 1e6:.0f}" for k in cpu)
        print(
            f"<!-- {label}: main process validate {stats.validate_s:.1f} s, writer {stats.commit_s:.1f} s; "
            f"CPU µs per message: {per_message} (wall {elapsed / n * 1e6:.0f}) -->"
        )
        db.dispose()
        return label, total, (total - first[1]) / max(elapsed, 1e-9), bare_rate
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def postgres_database(admin_url: str) -> tuple[str, str] | None:
    try:
        import psycopg

        name = f"edgescreen_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return admin_url.rsplit("/", 1)[0] + f"/{name}", name
    except Exception as exc:
        print(f"<!-- PostgreSQL skipped: {exc} -->")
        return None


def drop_postgres(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20, help="simulated devices")
    parser.add_argument("--per-device", type=int, default=1000, help="messages per device")
    parser.add_argument("--workers", type=int, default=1, help="collector ingest processes (shared subscription)")
    parser.add_argument(
        "--rules", type=Path, default=None, help="alert rules to evaluate on every batch (e.g. the shipped example)"
    )
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL")
    parser.add_argument(
        "--receipts-rounds", type=int, default=0, help="measure receipts: this many rounds with and without them"
    )
    args = parser.parse_args()
    if args.receipts_rounds:
        compare_receipts(args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "sqlite").mkdir()
        rows.append(run_one("sqlite", f"sqlite:///{work}/bench.db", work / "sqlite", args))
        pg = postgres_database(args.pg)
        if pg is not None:
            (work / "pg").mkdir()
            try:
                rows.append(run_one("postgresql", pg[0], work / "pg", args))
            finally:
                drop_postgres(args.pg, pg[1])
    cpu = platform.processor() or platform.machine()
    python = platform.python_version()
    print(
        f"\nCollector ingest — {args.devices} devices, {args.workers} ingest process(es), "
        f"alert rules: {args.rules or 'none'}, {os.cpu_count()} CPU(s), "
        f"{cpu}, Python {python}\n"
    )
    print("| database | messages | stored msg/s | bare mosquitto_sub msg/s | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, total, stored, bare in rows:
        print(f"| {label} | {total} | {stored:,.0f} | {bare:,.0f} | {stored / bare:.0%} |")


def compare_receipts(args: argparse.Namespace) -> None:
    rates: dict[bool, list[float]] = {True: [], False: []}
    print("| round | receipts | messages | stored msg/s |")
    print("| ---: | --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.receipts_rounds):
            # Alternate which goes first, so that neither always runs on a warmer (or busier) machine.
            for receipts in (True, False) if round_ % 2 == 0 else (False, True):
                work = Path(tmp) / f"r{round_}-{int(receipts)}"
                work.mkdir()
                _label, total, stored, _bare = run_one("sqlite", f"sqlite:///{work}/bench.db", work, args, receipts)
                rates[receipts].append(stored)
                print(f"| {round_ + 1} | {'on' if receipts else 'off'} | {total} | {stored:,.0f} |", flush=True)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    load = os.getloadavg()
    print(
        f"\nMedian stored msg/s: receipts on {on:,.0f}, off {off:,.0f}: receipts cost {1 - on / off:.1%} of the "
        f"ingest rate ({args.devices} devices, SQLite, {os.cpu_count()} CPU(s), "
        f"{platform.processor() or platform.machine()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})"
    )


if __name__ == "__main__":
    main()
