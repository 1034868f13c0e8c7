"""Command line: ``volunteer-bot [run] | db … | tasks import FILE | status | check-config``."""

import argparse
import asyncio
import getpass
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from bot import __version__, logs
from bot.config import ConfigError, Settings, find_config_file, load_settings
from bot.loader import UnknownCog
from storage.faults import CannotConnect, DatabaseUnavailable, SchemaTooNew

if TYPE_CHECKING:
    from storage.db import Database

log = logging.getLogger("bot")


def _run_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="TOML config file (default: $VOLUNTEER_BOT_CONFIG or ./config.toml)",
    )
    parser.add_argument(
        "--log-level",
        default=default,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging detail",
    )
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="NAME",
        default=default,
        help="console: act as this person (default: your login name)",
    )
    parser.add_argument("--coordinator", metavar="NAME", action="append", default=default,
                        help="console: give NAME coordinator rights (repeatable)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="volunteer-bot",
        description="Coordinates campaign volunteers on Discord, Matrix and the console.",
    )
    parser.add_argument("--version", action="version", version=f"volunteer-bot {__version__}")
    _run_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="{run,db,tasks,status,check-config}")
    run = sub.add_parser("run", help="run the bot (the default)")
    _run_options(run, argparse.SUPPRESS)
    db = sub.add_parser("db", help="database maintenance")
    _run_options(db, argparse.SUPPRESS)
    db_sub = db.add_subparsers(dest="db_command", metavar="{upgrade,copy,backup,restore}",
                               required=True)  # fmt: skip
    db_sub.add_parser("upgrade", help="apply pending schema migrations")
    backup = db_sub.add_parser(
        "backup",
        help="copy the database into a new file while the bot runs",
        description="Copy the configured database into PATH with SQLite's online backup "
        "(the bot may keep running), checked before it gets its name. On PostgreSQL the "
        "backup is a SQLite file made by `db copy`.",
    )
    backup.add_argument("path", metavar="PATH", nargs="?", default=None,
                        help="the new file (default: NAME-backup-DATE-TIME.db beside the "
                        "database)")  # fmt: skip
    restore = db_sub.add_parser(
        "restore",
        help="put a backup in the database file's place (the old file is kept aside)",
        description="Check the backup at PATH and copy it into the configured SQLite file; "
        "the file it replaces is renamed NAME.damaged-DATE (or .replaced-DATE), never deleted.",
    )
    restore.add_argument("path", metavar="PATH", help="a file made by `db backup`")
    restore.add_argument(
        "--force",
        action="store_true",
        help="restore even though a bot process seems to run on the database",
    )
    copy = db_sub.add_parser(
        "copy",
        help="copy a whole campaign into a new, empty database (e.g. SQLite to PostgreSQL)",
        description="Copy every table from SOURCE_URL into TARGET_URL, which is migrated "
        "first and must be empty. The bot should not be running on SOURCE_URL meanwhile.",
    )
    copy.add_argument("source_url", metavar="SOURCE_URL", help="e.g. sqlite:///volunteer-bot.db")
    copy.add_argument("target_url", metavar="TARGET_URL",
                      help="e.g. postgresql://bot:password@db.example.org/campaign")  # fmt: skip

    tasks = sub.add_parser("tasks", help="the task queue")
    _run_options(tasks, argparse.SUPPRESS)
    tasks_sub = tasks.add_subparsers(dest="tasks_command", metavar="{import}", required=True)
    task_import = tasks_sub.add_parser(
        "import",
        help="post the tasks of a CSV file",
        description="Post one task per row and target language. The first line names the "
        "columns: kind and title are required; language (several separated by ;), "
        "source_language, priority, due, description and source may be given. Every row is "
        "checked first: with any bad row nothing is imported.",
    )
    task_import.add_argument("file", metavar="FILE.csv", help="the CSV file (UTF-8)")
    task_import.add_argument("--dry-run", action="store_true",
                             help="only check the file; post nothing")  # fmt: skip

    status = sub.add_parser("status", help="the processes on this database and their duties")
    _run_options(status, argparse.SUPPRESS)
    check = sub.add_parser("check-config", help="validate the configuration and exit")
    _run_options(check, argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings, warnings = load_settings(find_config_file(args.config))
    except ConfigError as exc:
        print(f"volunteer-bot: {exc}", file=sys.stderr)
        return 2
    console = args.command in (None, "run") and not (
        settings.matrix.enabled or settings.discord.enabled
    )
    level = args.log_level or ("WARNING" if console else settings.bot.log_level)
    logs.configure(level)
    for warning in warnings:
        log.warning("%s", warning)
    try:
        if args.command == "check-config":
            return _check_config(settings)
        if args.command == "db" and args.db_command == "copy":
            return _db_copy(settings, args.source_url, args.target_url)
        if args.command == "db" and args.db_command == "backup":
            return _db_backup(settings, args.path)
        if args.command == "db" and args.db_command == "restore":
            return _db_restore(settings, args.path, force=args.force)
        if args.command == "db":
            return _db_upgrade(settings)
        if args.command == "tasks":
            return _tasks_import(settings, args.file, args.dry_run, args.as_user or _login())
        if args.command == "status":
            return asyncio.run(_status(settings))
        return asyncio.run(_run(settings, args, console))
    except DatabaseUnavailable as exc:
        print(f"volunteer-bot: {exc} ({_engine_name(settings.storage.url)} storage)",
              file=sys.stderr)  # fmt: skip
        # Nothing to reach, or a schema from the future: the configuration is what is wrong.
        return 2 if isinstance(exc, CannotConnect | SchemaTooNew) else 1
    except UnknownCog as exc:
        print(f"volunteer-bot: config error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"volunteer-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _engine_name(url: str) -> str:
    """The URL's scheme, and nothing else of it (the rest may hold a password)."""
    scheme, separator, _ = url.partition("://")
    return scheme if separator and scheme.replace("+", "").isalnum() else "unknown"


def _check_config(settings: Settings) -> int:
    from bot import loader

    names = settings.bot.cogs or loader.available()
    unknown = sorted(set(names) - set(loader.available()))
    if unknown:
        print(f"volunteer-bot: config error: bot.cogs: unknown cogs {unknown}", file=sys.stderr)
        return 2
    platforms = [p for p in ("matrix", "discord") if getattr(settings, p).enabled] or ["console"]
    print(f"config ok: platforms {', '.join(platforms)}; cogs {', '.join(names)}")
    return 0


def _db_upgrade(settings: Settings) -> int:
    from storage import backup, migrations
    from storage.db import Database

    db = Database(settings.storage.url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        if db.path is not None:
            backup.check(db.path)
        applied = migrations.upgrade(db)
        with db.engine.connect() as conn:
            version = migrations.current_version(conn)
    finally:
        db.close()
    for step in applied:
        print(f"applied {step.version}: {step.description}")
    print(f"schema is at version {version}")
    return 0


def _db_copy(settings: Settings, source_url: str, target_url: str) -> int:
    from storage.db import Database
    from storage.transfer import CopyRefused, copy_database

    started = time.monotonic()
    timeout = settings.storage.busy_timeout_ms
    try:
        source = Database(source_url, busy_timeout_ms=timeout)
        if source.path is not None and not source.path.exists():
            source.close()
            raise CopyRefused(f"the source database file {source.path} does not exist")
        try:
            target = Database(target_url, busy_timeout_ms=timeout)
            try:
                bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
                copied = copy_database(source, target, bar.show if bar else None)
            finally:
                target.close()
        finally:
            source.close()
    except DatabaseUnavailable as exc:
        print(f"volunteer-bot: db copy: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, CannotConnect | SchemaTooNew | CopyRefused) else 1
    rows = ", ".join(f"{name} {count:,}" for name, count in copied.rows.items())
    print(f"copied {copied.total:,} rows in {len(copied.rows)} tables "
          f"({time.monotonic() - started:.1f} s): {rows}")  # fmt: skip
    return 0


def _db_backup(settings: Settings, path: str | None) -> int:
    """Back the database up into a new SQLite file."""
    from datetime import UTC, datetime
    from pathlib import Path

    from storage import backup
    from storage.db import Database
    from storage.transfer import copy_database

    now = datetime.now(UTC)
    db = Database(settings.storage.url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        if db.path is not None:
            target = Path(path) if path else backup.default_backup_path(db.path, now)
            pages = backup.backup(db.path, target)
            size = target.stat().st_size
            print(f"backed up {db.path} to {target} ({pages:,} pages, {size / 2**20:.1f} MiB)")
            return 0
        if not path:
            raise backup.BackupRefused("name the new SQLite file for a PostgreSQL backup "
                                       "(or use pg_dump)")  # fmt: skip
        target = Path(path)
        if target.exists():
            raise backup.BackupRefused(f"{target} exists already; name a new file for the backup")
        copy = Database(f"sqlite:///{target}", busy_timeout_ms=settings.storage.busy_timeout_ms)
        try:
            copied = copy_database(db, copy)
        finally:
            copy.close()
    finally:
        db.close()
    print(f"backed up {copied.total:,} rows to {target}; restore it into an empty database "
          f"with `volunteer-bot db copy sqlite:///{target} TARGET_URL`")  # fmt: skip
    return 0


def _db_restore(settings: Settings, path: str, *, force: bool) -> int:
    """Put a backup in the SQLite database file's place, unless a bot runs on it."""
    from datetime import UTC, datetime
    from pathlib import Path

    from storage import backup
    from storage.db import Database

    db = Database(settings.storage.url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        if db.path is None:
            raise backup.BackupRefused(
                "restore onto PostgreSQL with pg_restore, or copy a SQLite backup into a new, "
                "empty database with `volunteer-bot db copy sqlite:///BACKUP TARGET_URL`"
            )
        running = 0 if force else asyncio.run(_live_processes(db, settings))
    finally:
        db.close()
    if running:
        raise backup.BackupRefused(
            f"{running} bot process{'' if running == 1 else 'es'} ran on {db.path} moments ago; "
            "stop the bot first (or pass --force if it is gone)"
        )
    done = backup.restore(Path(path), db.path, datetime.now(UTC))
    kept = f"; the previous file is kept as {done.aside}" if done.aside else ""
    print(f"restored {done.path} from {path}{kept}")
    return 0


async def _live_processes(db: "Database", settings: Settings) -> int:
    """How many bot processes beat their heartbeat on ``db`` lately (0 if it cannot tell)."""
    from datetime import UTC, datetime

    from storage import backup
    from storage.leases import LeaseRepo

    assert db.path is not None
    if not db.path.exists() or backup.problem(db.path) is not None:
        return 0  # a damaged file is refused at start: nothing runs on it
    try:
        processes, _ = await LeaseRepo(db).status()
    except DatabaseUnavailable:
        return 0  # e.g. a file from before the process table: nothing can say
    now = datetime.now(UTC)
    return sum(now - p.heartbeat_at <= settings.bot.lease_ttl * 3 for p in processes)


def _tasks_import(settings: Settings, path: str, dry_run: bool, user: str) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from bot.domain import UserRef
    from bot.importing import ImportRefused, read_csv, summary
    from bot.params import ParseEnv
    from storage import migrations
    from storage.db import Database
    from storage.tasks import TaskRepo

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        print(f"volunteer-bot: tasks import: cannot read {path}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    now = datetime.now(UTC)
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    started = time.monotonic()
    try:
        rows = read_csv(data, ParseEnv(now, settings.campaign.timezone, "console"),
                        (lambda done, total: bar.show("checking rows", done, total))
                        if bar else None)  # fmt: skip
    except ImportRefused as exc:
        print(f"volunteer-bot: tasks import: {path}: {exc}", file=sys.stderr)
        return 1
    if dry_run:
        print(f"{path}: every row is fine; {summary(rows)}. Nothing was posted (--dry-run).")
        return 0
    db = Database(settings.storage.url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        migrations.upgrade(db)
        posted = asyncio.run(TaskRepo(db).post_many(
            UserRef("console", user, user), [row.job for row in rows], now=now,
            progress=(lambda done, total: bar.show("posting tasks", done, total)) if bar else None,
        ))  # fmt: skip
    finally:
        db.close()
    print(f"{path}: {summary(rows, posted)} in {time.monotonic() - started:.1f} s.")
    return 0


class ProgressBar:
    """One line per table on a terminal, redrawn as its rows arrive."""

    WIDTH = 30

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.drawn: tuple[str, int] | None = None

    def show(self, table: str, done: int, total: int) -> None:
        """Draw ``table``'s bar; a finished table keeps its line."""
        filled = self.WIDTH if total == 0 else self.WIDTH * done // total
        if self.drawn == (table, filled) and done < total:
            return
        self.drawn = (table, filled)
        bar = "█" * filled + "·" * (self.WIDTH - filled)
        end = "\n" if done >= total else ""
        self.out.write(f"\r{table:<18} {bar} {done:>11,} / {total:,}{end}")
        self.out.flush()


async def _status(settings: Settings) -> int:
    """Print every live process on the configured database, its duties and their leases."""
    from datetime import UTC, datetime

    from storage import migrations
    from storage.db import Database
    from storage.leases import LeaseRepo

    db = Database(settings.storage.url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        with db.engine.connect() as conn:
            version = migrations.current_version(conn)
        if version < migrations.MIGRATIONS[-1].version:
            print(
                "volunteer-bot: the database is not set up for this version yet; run "
                "`volunteer-bot db upgrade` (or start the bot) first",
                file=sys.stderr,
            )
            return 1
        processes, leases = await LeaseRepo(db).status()
    finally:
        db.close()
    now = datetime.now(UTC)
    stale_after = settings.bot.lease_ttl * 3
    live = [p for p in processes if now - p.heartbeat_at <= stale_after]
    held = {
        lease.duty: lease
        for lease in leases
        if lease.holder and lease.expires_at and lease.expires_at > now
    }
    print(f"{len(live)} live process{'' if len(live) == 1 else 'es'}")
    for p in live:
        duties = sorted(d for d, lease in held.items() if lease.holder == p.id)
        since = p.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        role = ", ".join(duties) if duties else "standby"
        print(f"- {p.host} pid {p.pid}, version {p.version}, since {since}: {role}")
        for duty in duties:
            expires = held[duty].expires_at
            assert expires is not None
            left = (expires - now).total_seconds()
            print(f"    {duty}: lease {held[duty].token}, expires in {left:.1f} s")
    free = sorted({lease.duty for lease in leases} - set(held))
    if free:
        print(f"not served by anyone right now: {', '.join(free)}")
    return 0


async def _run(settings: Settings, args: argparse.Namespace, console: bool) -> int:
    from bot.adapters import Adapter
    from bot.adapters.console_adapter import ConsoleAdapter
    from bot.app import App

    app = App(settings)
    adapters: list[Adapter]
    if console:
        coordinators = set(settings.console.coordinators) | set(args.coordinator or [])
        adapters = [ConsoleAdapter(app, user=args.as_user or _login(), coordinators=coordinators)]
    else:
        adapters = app.platform_adapters()
    return await app.run(adapters)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "me"


if __name__ == "__main__":
    sys.exit(main())
