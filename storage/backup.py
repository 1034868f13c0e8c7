"""Checking, backing up and restoring the SQLite file (``volunteer-bot db backup / restore``).

A damaged file is found at start by ``PRAGMA quick_check`` (and by SQLite refusing a file that
is not a database at all), and refused with one line that says how to put a backup in its
place. A backup is taken with SQLite's online backup API, so the bot may keep running; it is
written beside its final name and checked before it gets that name. A restore checks the
backup, sets the file it replaces aside (with its write-ahead log) and never overwrites it.
"""

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from storage.faults import DatabaseUnavailable, Kind, classify

log = logging.getLogger(__name__)

RESTORE_HINT = "restore a backup with `volunteer-bot db restore BACKUP`"
# A damaged file may list thousands of problems; the first few say enough.
PROBLEMS_SHOWN = 1
SIDECARS = ("-wal", "-shm")
# What SQLite's refusal to open or read a file says about it, by primary error name.
_DETAILS = {
    "SQLITE_NOTADB": "it is not a SQLite database",
    "SQLITE_CORRUPT": "SQLite found it malformed",
}


class Damaged(DatabaseUnavailable):
    """The SQLite file is not a database, is cut short, or fails its integrity check."""

    def __init__(self, path: Path, detail: str, code: str = "") -> None:
        super().__init__(
            f"the database file {path} is damaged ({detail}); {RESTORE_HINT}",
            kind=Kind.DAMAGED,
            code=code,
        )


class BackupRefused(DatabaseUnavailable):
    """A backup or restore that cannot be done as asked (the reason says why)."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore did: the file it wrote and where the one it replaced went."""

    path: Path
    aside: Path | None


def problem(path: Path) -> tuple[str, str] | None:
    """What is wrong with the SQLite file at ``path`` (detail, driver code); None if sound.

    A missing or empty file is sound: SQLite makes a new database of it.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        fault = classify(exc)
        if fault is not None and fault.transient:  # held by a process that opened it fine
            log.warning("database file %s not checked: %s", path, fault.reason)
            return None
        return _fault_words(exc)
    if rows == ["ok"]:
        return None
    shown = "; ".join(line.strip() for line in rows[:PROBLEMS_SHOWN])
    more = f" and {len(rows) - PROBLEMS_SHOWN} more" if len(rows) > PROBLEMS_SHOWN else ""
    return f"integrity check: {shown}{more}", "quick_check"


def _fault_words(exc: sqlite3.Error) -> tuple[str, str]:
    fault = classify(exc)
    if fault is None:
        raise exc  # not a fault of the file
    primary = "_".join(fault.code.split("_")[:2])  # SQLITE_CORRUPT_INDEX is SQLITE_CORRUPT
    return _DETAILS.get(primary, fault.reason), fault.code


def check(path: Path) -> None:
    """Raise Damaged if the file at ``path`` fails its check; log how long the check took."""
    started = time.monotonic()
    found = problem(path)
    took = time.monotonic() - started
    if found is not None:
        detail, code = found
        log.debug("database file %s is damaged: %s (%s)", path, detail, code)  # main says it
        raise Damaged(path, detail, code)
    log.debug("database file %s passed its check in %.2f s", path, took)


def default_backup_path(path: Path, now: datetime) -> Path:
    """``bot.db`` backs up to ``bot-backup-20260302-101500.db`` beside it."""
    stamp = now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return path.with_name(f"{path.stem}-backup-{stamp}{path.suffix or '.db'}")


def backup(source: Path, target: Path) -> int:
    """Copy the live SQLite database ``source`` into the new file ``target``; its pages.

    Raises BackupRefused if ``target`` exists or ``source`` does not, and Damaged if the
    copy fails its check (then nothing is left at ``target``).
    """
    if not source.exists():
        raise BackupRefused(f"there is no database file {source} to back up")
    if target.exists():
        raise BackupRefused(f"{target} exists already; name a new file for the backup")
    partial = target.with_name(target.name + ".partial")
    pages = _copy(source, partial)
    found = problem(partial)
    if found is not None:
        partial.unlink()
        raise Damaged(source, found[0], found[1])
    partial.rename(target)
    return pages


def _copy(source: Path, target: Path) -> int:
    """SQLite's online backup of ``source`` into ``target`` (made anew); pages copied."""
    target.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(source)  # only read: the backup API takes a read lock
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
                pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        fault = classify(exc)
        if fault is None:
            raise
        raise (
            Damaged(source, fault.reason, fault.code)
            if fault.kind is Kind.DAMAGED
            else (DatabaseUnavailable(fault.reason, kind=fault.kind, code=fault.code))
        ) from exc
    return pages


def restore(backup_file: Path, path: Path, now: datetime) -> Restored:
    """Put a checked copy of ``backup_file`` at ``path``, setting the file there aside.

    Raises BackupRefused if the backup is missing or is not a bot database, and Damaged if
    it fails its check; ``path`` is then left as it was.
    """
    if not backup_file.is_file():
        raise BackupRefused(f"there is no backup file {backup_file}")
    if backup_file.resolve() == path.resolve():
        raise BackupRefused(f"{backup_file} is the database file itself; name a backup")
    found = problem(backup_file)
    if found is not None:
        raise BackupRefused(f"the backup {backup_file} is damaged too ({found[0]})")
    if not _is_bot_database(backup_file):
        raise BackupRefused(f"{backup_file} is not a volunteer-bot database")
    staged = path.with_name(path.name + ".restoring")
    _copy(backup_file, staged)
    aside: Path | None = None
    if path.exists():
        damaged = problem(path) is not None
        stamp = now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.name}.{'damaged' if damaged else 'replaced'}-{stamp}")
        os.replace(path, aside)
        for tail in SIDECARS:  # a log left behind would be replayed onto the restored file
            sidecar = path.with_name(path.name + tail)
            if sidecar.exists():
                os.replace(sidecar, aside.with_name(aside.name + tail))
    os.replace(staged, path)
    log.warning("restored %s from %s; the previous file is %s", path, backup_file, aside)
    return Restored(path, aside)


def _is_bot_database(path: Path) -> bool:
    conn = sqlite3.connect(path)
    try:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
    finally:
        conn.close()
    return found is not None
