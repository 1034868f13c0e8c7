"""Every table is covered by the cogs' export and erasure, or declared free of personal data.

Nothing here names a cog's tables. A scenario uses every loaded cog through its documented
commands (DESIGN.md §2) as two people, then the checks read every table of the real database
(SQLite, and PostgreSQL), and on SQLite the file's bytes too: a table added later is covered
automatically, and fails here until the cog that owns it exports and erases it (or it joins
``NO_PERSONAL_DATA``).

Everything the two people are or type carries a marker: ``zqx…`` for the subject, ``zqy…``
for the other person. Their ids and display names (``zqxid…``, ``zqxname…``) must vanish on
erasure; what they typed may stay where it is shared campaign data (a task title), but must
be in their export.
"""

import importlib
import json
import pkgutil
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import storage
from bot.app import App
from bot.commands import Cog, SpecError
from bot.context import Actor, Ctx, Place, Reply
from bot.domain import Markup, UserRef
from storage.db import Database
from storage.models import NO_PERSONAL_DATA
from tests.harness import Harness, make_app

SUBJECT = UserRef("test", "zqxidalice", "Zqxname Alice")
OTHER = UserRef("test", "zqyidbob", "Zqyname Bob")
IDENTITY = {SUBJECT: ("zqxidalice", "zqxname"), OTHER: ("zqyidbob", "zqyname")}
TAG = {SUBJECT: "zqx", OTHER: "zqy"}
MARKERS = re.compile(r"zq[xy][a-z0-9]+", re.IGNORECASE)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


# --- reading every table of the database --------------------------------------------------


@dataclass
class Table:
    name: str
    columns: list[str]
    rows: list[tuple[object, ...]]
    # (column, referenced table, referenced column)
    foreign_keys: list[tuple[str, str, str]] = field(default_factory=list)

    def texts(self, row: tuple[object, ...]) -> dict[str, str]:
        """The row's text and blob cells, by column."""
        out: dict[str, str] = {}
        for column, value in zip(self.columns, row, strict=True):
            if isinstance(value, str):
                out[column] = value
            elif isinstance(value, bytes | memoryview):
                out[column] = bytes(value).decode("latin-1")
            elif isinstance(value, datetime):  # PostgreSQL's timestamps, as SQLite's read
                out[column] = value.strftime("%Y-%m-%d %H:%M:%S")
        return out


def snapshot(db: Database) -> dict[str, Table]:
    """Every table as stored, read without the models (a table they lack shows too)."""
    tables: dict[str, Table] = {}
    with db.engine.connect() as conn:
        inspector = sa.inspect(conn)
        for name in inspector.get_table_names():
            columns = [column["name"] for column in inspector.get_columns(name)]
            listed = ", ".join(f'"{column}"' for column in columns)
            rows = [tuple(row) for row in conn.exec_driver_sql(f'SELECT {listed} FROM "{name}"')]
            table = Table(name, columns, rows)
            for fk in inspector.get_foreign_keys(name):
                for column, ref_column in zip(
                    fk["constrained_columns"], fk["referred_columns"], strict=True
                ):
                    table.foreign_keys.append((column, fk["referred_table"], ref_column))
            tables[name] = table
    return tables


def names_person(text: str, person: UserRef) -> bool:
    lowered = text.lower()
    return any(token in lowered for token in IDENTITY[person])


@dataclass
class Related:
    """Rows about one person: naming them, or pointing at a row that names them."""

    naming: list[tuple[Table, tuple[object, ...]]] = field(default_factory=list)
    linked: list[tuple[Table, tuple[object, ...]]] = field(default_factory=list)


def related(tables: dict[str, Table], person: UserRef) -> dict[str, Related]:
    found = {name: Related() for name in tables}
    # (table, column) -> values in rows that name the person, for following foreign keys
    keys: dict[tuple[str, str], set[object]] = {}
    for table in tables.values():
        for row in table.rows:
            if any(names_person(text, person) for text in table.texts(row).values()):
                found[table.name].naming.append((table, row))
                for column, value in zip(table.columns, row, strict=True):
                    keys.setdefault((table.name, column), set()).add(value)
    for table in tables.values():
        for row in table.rows:
            if any(row is r for _, r in found[table.name].naming):
                continue
            cells = dict(zip(table.columns, row, strict=True))
            if any(
                cells[column] is not None and cells[column] in keys.get((ref, ref_column), ())
                for column, ref, ref_column in table.foreign_keys
            ):
                found[table.name].linked.append((table, row))
    return found


def normalise(text: str) -> str:
    """Letters and digits only, so "de,fr" matches ["de", "fr"] and JSON escapes vanish."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def file_bytes(db: Path) -> dict[str, bytes]:
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return {f.name: f.read_bytes().lower() for f in files if f.exists()}


# --- the scenario -------------------------------------------------------------------------


async def act(app: App, who: UserRef, line: str) -> str:
    ctx = Ctx(Actor(who, is_coordinator=True), Place("test:room"), app.clock.now())
    reply = await app.core.handle_text(ctx, line, prefixes=("",))
    assert isinstance(reply, Reply), line
    assert not reply.is_error, f"{line!r} failed: {reply.body.plain()}"
    return reply.body.plain()


def number_in(text: str) -> int:
    found = re.search(r"#(\d+)", text) or re.search(r"\b(\d+)\b", text)
    assert found, f"no task number in {text!r}"
    return int(found.group(1))


async def live_a_campaign_life(h: Harness, who: UserRef) -> None:
    """Use every loaded cog the way a coordinator who volunteers would."""
    app, tag, groups = h.app, TAG[who], h.app.services.registry.groups
    await act(app, who, "volunteer join translator --languages pl,de --country DE")
    await act(app, who, "volunteer join networker")
    await act(app, who, "volunteer language en")  # kept, and answers stay readable here
    await act(app, who, "volunteer timezone Europe/Warsaw")
    if "task" in groups:
        posted = await act(
            app,
            who,
            f"task post translation {tag}title leaflet --language pl "
            f"--description {tag}desc for the Warsaw stand",
        )
        await act(app, who, f"task claim {number_in(posted)}")
        await act(app, who, f"task post translation {tag}title poster --language de")
        await act(
            app,
            who,
            f"task post translation {tag}title flyer --language pl,de "
            f"--source https://example.org/{tag}src --description {tag}desc",
        )
    if "reminder" in groups:
        await act(app, who, f"reminder add {tag}remind call the press --in 3d")
    if "signatures" in groups:
        await act(app, who, "signatures set 1000 --country DE")
    repo = app.services.outbox_repo
    now = app.clock.now()
    for n in (1, 2):
        await repo.add(
            key=f"test:{tag}note{n}",
            target="test:room",
            body=Markup.format("Hello {name}, {tag}note{n}", name=who.label, tag=tag, n=n),
            now=now,
            recipient_id=who.external_id,
        )
        if n == 1:
            await h.deliver()  # one sent, one still waiting
    # The direct chat an adapter opens to answer confidentially (Matrix does).
    await app.services.direct_chats.remember(who, f"!{tag}dm:example.org", now)
    # A file an adapter uploaded only for the person (Matrix records its mydata.json).
    upload = await app.services.uploads.uploaded(
        who, f"mxc://example.org/{tag}file", f"!{tag}dm:example.org", now
    )
    await app.services.uploads.sent(upload, f"${tag}fileevent")
    await repo.add(
        key=f"test:{tag}post",
        target="test:room",
        body=Markup.format("{name} did it: {tag}post", name=who.label, tag=tag),
        now=now,
        subject=who,
    )


@pytest.fixture
async def world(tmp_path: Path, db_url: str) -> AsyncIterator[Harness]:
    # Every storage module, so SQLModel.metadata holds every table there is.
    for info in pkgutil.iter_modules(storage.__path__):
        importlib.import_module(f"storage.{info.name}")
    app = make_app(tmp_path, url=db_url)
    try:
        h = Harness(app)
        for person in (SUBJECT, OTHER):
            await live_a_campaign_life(h, person)
        yield h
    finally:
        await app.stop()


def db_path(h: Harness) -> Path:
    path = h.app.db.path
    assert path is not None
    return path


async def export_text(h: Harness, who: UserRef) -> str:
    ctx = Ctx(Actor(who, is_coordinator=True), Place("test:room"), h.clock.now())
    reply = await h.app.core.handle_text(ctx, "privacy mydata", prefixes=("",))
    assert reply is not None and not reply.is_error
    (attachment,) = reply.attachments
    return attachment.data.decode()


# --- the rule, at class creation ----------------------------------------------------------


def test_a_cog_storing_personal_data_without_export_and_erase_fails_at_class_creation():
    with pytest.raises(SpecError, match="implement export_data and erase_data"):

        class Forgetful(Cog):
            """Keeps things about people and says nothing."""

    with pytest.raises(SpecError, match="implement export_data and erase_data"):

        class HalfDone(Cog):
            """Exports but cannot erase."""

            async def export_data(self, user: UserRef) -> dict[str, object]:
                return {}


def test_a_cog_that_declares_no_personal_data_needs_neither():
    class Stateless(Cog):
        """Stores nothing about anyone."""

        personal_data = False

    assert Stateless.personal_data is False


async def test_every_loaded_cog_with_personal_data_has_its_own_export_and_erase(
    harness: Harness,
):
    holders = [cog for cog in harness.app.cogs if cog.personal_data]
    assert holders, "at least the volunteer cog stores personal data"
    for cog in holders:
        assert type(cog).export_data is not Cog.export_data, type(cog).__name__
        assert type(cog).erase_data is not Cog.erase_data, type(cog).__name__


# --- the rule, over the real tables -------------------------------------------------------


async def test_every_table_is_in_the_export_or_declared_free_of_personal_data(world: Harness):
    tables = snapshot(world.app.db)
    assert not set(SQLModel.metadata.tables) - set(tables), "every model has a migration"
    export = (await export_text(world, SUBJECT)).lower()
    flat = normalise(export)
    about = related(tables, SUBJECT)
    problems: list[str] = []
    for name in sorted(set(tables) | set(SQLModel.metadata.tables)):
        rows = about[name]
        if name in NO_PERSONAL_DATA:
            if rows.naming or related(tables, OTHER)[name].naming:
                problems.append(f"{name}: declared free of personal data but names a person")
            continue
        if not rows.naming and not rows.linked:
            problems.append(
                f"{name}: no row about a person after the scenario: make the scenario touch "
                "it, or add it to storage.models.NO_PERSONAL_DATA if it never holds one"
            )
        for table, row in rows.naming:
            for column, text in table.texts(row).items():
                for marker in MARKERS.findall(text):
                    if marker.lower() not in export:
                        problems.append(f"{name}.{column}: {marker!r} is not in privacy mydata")
        for table, row in rows.linked:
            values = [
                TIMESTAMP.match(text).group(0).replace(" ", "T") if TIMESTAMP.match(text) else text
                for text in table.texts(row).values()
                if text.strip()
            ]
            if values and not any(normalise(v) in flat for v in values if normalise(v)):
                problems.append(f"{name}: a row about the person is not in privacy mydata {row}")
    assert not problems, "\n".join(problems)


async def test_the_export_holds_nothing_about_anyone_else(world: Harness):
    export = await export_text(world, SUBJECT)
    assert "zqxidalice" in export and "Zqxname Alice" in export
    assert not [m for m in MARKERS.findall(export) if m.lower().startswith("zqy")]


async def test_forget_leaves_no_trace_in_any_table(world: Harness):
    before = snapshot(world.app.db)
    about = related(before, SUBJECT)
    assert about["volunteer"].naming, "the scenario registered the subject"
    text = await act(world.app, SUBJECT, "privacy forget --confirm")
    assert text.startswith("Done. I erased")

    after = snapshot(world.app.db)
    for name, table in after.items():
        for row in table.rows:
            for column, value in table.texts(row).items():
                assert not names_person(value, SUBJECT), f"{name}.{column} still names them"
    assert related(after, OTHER)["volunteer"].naming, "the other person is untouched"
    assert "zqyidbob" in await export_text(world, OTHER)


@pytest.mark.sqlite_only
async def test_forget_leaves_no_trace_in_the_file_bytes_nor_dangling_rows(world: Harness):
    path = db_path(world)
    blob = b"".join(file_bytes(path).values())
    assert b"zqxidalice" in blob and b"zqxname" in blob, "the scan can see the data"
    text = await act(world.app, SUBJECT, "privacy forget --confirm")
    assert text.startswith("Done. I erased")
    with closing(sqlite3.connect(path)) as conn:
        dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    assert not dangling, f"rows still point at erased rows: {dangling}"
    for filename, data in file_bytes(path).items():
        for token in IDENTITY[SUBJECT]:
            assert token.encode() not in data, f"{filename} still holds {token!r}"


async def test_an_erased_person_who_comes_back_starts_from_nothing(world: Harness):
    await act(world.app, SUBJECT, "privacy forget --confirm")
    stored = json.loads(await export_text(world, SUBJECT))["stored"]
    assert stored == {}
