"""`edgescreen collector run` and `collector user add|disable|delete` (heavy imports stay inside handlers)."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from contract.errors import EdgeScreenError, UsageError

if TYPE_CHECKING:
    from edgescreen.cli import Groups

log = logging.getLogger(__name__)
# Where the installed service reads DB_URL from (edgescreen-collector.service, EnvironmentFile=).
COLLECTOR_ENV = Path("/etc/edgescreen/collector.env")
COLLECTOR_ENV_VAR = "EDGESCREEN_COLLECTOR_ENV"  # another file, for tests and unusual installs
RUN_DEFAULT_DB = "sqlite:///collector.db"
_DB_HELP = (
    "sqlite:///path or postgresql://…; default: $DB_URL, else DB_URL in /etc/edgescreen/collector.env "
    "(what the installed service uses)"
)


def collector_env_db() -> tuple[str, str] | None:
    """(DB_URL, where it came from) from the environment or the service's collector.env; None if neither has it."""
    if os.environ.get("DB_URL"):
        return os.environ["DB_URL"], "$DB_URL"
    path = Path(os.environ.get(COLLECTOR_ENV_VAR) or COLLECTOR_ENV)
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == "DB_URL" and value.strip():
            return value.strip().strip("'\""), str(path)
    return None


def user_db_url(args: argparse.Namespace) -> str:
    """The database a user command changes: --db, else the service's setting; never a guess in the current
    folder, where the service would not see the user."""
    if args.db:
        return str(args.db)
    found = collector_env_db()
    if found is None:
        raise UsageError(
            "which database? give --db (the DB_URL the collector runs with); neither $DB_URL nor "
            f"{os.environ.get(COLLECTOR_ENV_VAR) or COLLECTOR_ENV} names one"
        )
    log.info("database %s (from %s)", found[0], found[1])
    return found[0]


def register(groups: Groups) -> None:
    sub = groups.group("collector")
    run = sub.add_parser("run", help="subscribe, store, alert and serve the dashboard")
    run.add_argument("--broker", required=True, help="mqtt://host[:port] or mqtts://host[:port]")
    run.add_argument(
        "--db",
        help="sqlite:///path or postgresql://…; default: $DB_URL, else DB_URL in /etc/edgescreen/collector.env, "
        f"else {RUN_DEFAULT_DB}",
    )
    run.add_argument("--rules", type=Path, help="alert rules YAML (see firmware_config/alert-rules.example.yaml)")
    run.add_argument("--http", metavar="HOST:PORT", help="serve the dashboard here (e.g. 127.0.0.1:8080)")
    run.add_argument("--share", metavar="GROUP", help="shared subscription group, to split load between collectors")
    run.add_argument(
        "--client-id",
        help="MQTT client id without --tls-cert (with it, the certificate's identity is the client id); default: "
        "a random id kept in the state folder, so the broker keeps the session across restarts",
    )
    run.add_argument("--batch", type=int, default=2000, help="most messages stored per transaction")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="ingest processes sharing one subscription (default 1); each has a writer process of its own, "
        "so one already uses two cores",
    )
    run.add_argument("--tls-ca", type=Path, help="mqtts://: CA certificate (PEM) of the broker (default: system CAs)")
    run.add_argument("--tls-cert", type=Path, help="mqtts://: this collector's client certificate (PEM), mutual TLS")
    run.add_argument("--tls-key", type=Path, help="mqtts://: the private key of --tls-cert (PEM)")
    run.add_argument("--secret-file", type=Path, help="file with the key that signs dashboard sessions")
    run.add_argument(
        "--insecure-cookies", action="store_true", help="session cookie without Secure (plain-HTTP test set-ups only)"
    )
    run.add_argument(
        "--max-clock-ahead",
        type=float,
        default=300.0,
        metavar="S",
        help="dead-letter (reason clock) a device timestamp more than S seconds ahead of this collector's clock "
        "(default 300); times before 2020 are refused too",
    )
    run.add_argument(
        "--k",
        type=int,
        default=11,
        help="smallest group size shown in CSV exports and on the screening page (default 11)",
    )
    run.set_defaults(func=_run)

    user = sub.add_parser("user", help="dashboard users")
    user_sub = user.add_subparsers(metavar="COMMAND")
    add = user_sub.add_parser(
        "add",
        help="create a user, or give an existing one a new password and sites (this also enables a disabled "
        "user and ends their sessions)",
    )
    add.add_argument("username")
    add.add_argument("--db", help=_DB_HELP)
    add.add_argument("--site", action="append", required=True, help="site the user may see (repeat for more)")
    add.add_argument(
        "--role",
        choices=("staff", "nurse"),
        default="staff",
        help="staff (default): released aggregates only; nurse: also the screening follow-up list",
    )
    add.add_argument("--password-file", type=Path, help="read the password from this file instead of a prompt")
    add.set_defaults(func=_user_add)
    for name, text in (
        ("disable", "refuse the user's logins and end their sessions now (user add enables them again)"),
        ("delete", "remove the user and their site grants; their sessions end now"),
    ):
        command = user_sub.add_parser(name, help=text)
        command.add_argument("username")
        command.add_argument("--db", help=_DB_HELP)
        command.set_defaults(func=_user_change, change=name)
    user.set_defaults(func=lambda _a: _usage(user))


def _run(args: argparse.Namespace) -> int:
    from collector.client_id import collector_client_id
    from collector.mqtt_url import TlsFiles, client_tls, parse_broker_url
    from collector.service import CollectorService, ServiceSettings

    if not args.db:
        found = collector_env_db()
        args.db = found[0] if found else RUN_DEFAULT_DB
    tls = TlsFiles(args.tls_ca, args.tls_cert, args.tls_key)
    try:
        client_tls(parse_broker_url(args.broker), tls)  # a wrong TLS option first: the client id comes from it
        client_id = collector_client_id(args.client_id, tls, args.db, args.share, workers=args.workers)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    settings = ServiceSettings(
        broker_url=args.broker,
        db_url=args.db,
        rules_path=args.rules,
        http=args.http,
        share_group=args.share,
        client_id=client_id,
        batch_max=args.batch,
        secret_file=args.secret_file,
        secure_cookies=not args.insecure_cookies,
        k_anonymity=args.k,
        workers=max(1, args.workers),
        tls=tls,
        max_clock_ahead_s=args.max_clock_ahead,
    )
    from sqlalchemy.exc import OperationalError

    from collector.alerts.config import RulesError

    try:
        service = CollectorService(settings)
    except (RulesError, ValueError) as exc:  # DatabaseUrlError and bad --broker/--http are ValueErrors
        raise UsageError(str(exc)) from exc
    except OperationalError as exc:
        raise EdgeScreenError(f"cannot open the database {args.db}: {exc.orig or exc}") from exc
    return service.run_forever()


def _user_add(args: argparse.Namespace) -> int:
    from collector.storage import open_database
    from collector.users import UserError, add_user

    if args.password_file:
        try:
            password = args.password_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--password-file {args.password_file}: cannot read it ({exc})") from exc
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if password != getpass.getpass("again: "):
            raise EdgeScreenError("the two passwords differ; nothing changed")
    try:
        db = open_database(user_db_url(args))
    except ValueError as exc:  # a bad --db URL
        raise UsageError(str(exc)) from exc
    try:
        add_user(db, args.username, password, args.site, args.role)
    except UserError as exc:
        raise EdgeScreenError(str(exc)) from exc
    finally:
        db.dispose()
    extra = ", and as a nurse the screening follow-up list" if args.role == "nurse" else ""
    print(f"user {args.username} can see: {', '.join(sorted(set(args.site)))}{extra}")
    return 0


def _user_change(args: argparse.Namespace) -> int:
    from collector.storage import open_database
    from collector.users import delete_user, disable_user

    try:
        db = open_database(user_db_url(args))
    except ValueError as exc:  # a bad --db URL
        raise UsageError(str(exc)) from exc
    try:
        done = (disable_user if args.change == "disable" else delete_user)(db, args.username)
    finally:
        db.dispose()
    if not done:
        raise EdgeScreenError(f"no user {args.username!r}")
    state = "disabled" if args.change == "disable" else "deleted"
    print(f"user {args.username} is {state}; their dashboard sessions have ended")
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
