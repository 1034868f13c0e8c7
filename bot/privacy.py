"""Personal data across every loaded cog: collect it for an export, erase it everywhere.

Each cog that stores anything about people implements ``export_data`` and ``erase_data``
(the ``Cog`` base refuses a class that claims personal data without them). This module adds
what the core itself keeps about a person (the outbox rows addressed to them, the direct
chats adapters opened with them), and makes sure erased data leaves the database file.
"""

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from bot.commands import Cog
from bot.context import Ctx
from bot.core import Registry
from bot.domain import Markup, UserRef
from bot.domain.i18n import Msg, _, ngettext
from bot.outbox import Renderers, UnknownKind
from bot.uploads import MediaErasure, Uploads
from storage.acting import unguarded
from storage.db import Database
from storage.direct_chats import DirectChatRepo
from storage.erasure import ErasureRepo
from storage.models import OutboxMessage
from storage.outbox import OutboxRepo
from storage.uploads import UploadRepo
from storage.volunteers import VolunteerRepo

log = logging.getLogger(__name__)

# What erasure writes where a stored post named the person (stored, so in English).
FORMER_VOLUNTEER = "a former volunteer"
MESSAGES = "messages_for_you"
POSTS = "posts_naming_you"
DIRECT_CHATS = "direct_chats_with_you"
FILES = "files_sent_to_you"
# How the core's own sections of an export read, counted.
CORE_PHRASES: dict[str, Msg] = {
    MESSAGES: ngettext(
        "{n:,} bot message addressed to you", "{n:,} bot messages addressed to you"
    ),
    POSTS: ngettext("{n:,} bot message that names you", "{n:,} bot messages that name you"),
    DIRECT_CHATS: ngettext(
        "{n:,} direct chat the bot opened with you", "{n:,} direct chats the bot opened with you"
    ),
    FILES: ngettext("{n:,} file the bot sent only to you", "{n:,} files the bot sent only to you"),
}
COMMA = Markup.trusted(", ")
# How a cog's section of an export reads. Translators: {label} and {section} are the names a
# part of the bot stores data under, as code and in English (`volunteer`, `task`); {fields}
# lists the names of what the record holds (`roles`, `languages`).
RECORD = _("your {label} record")
RECORD_FIELDS = _("your {label} record ({fields})")
RECORD_ENTRIES = ngettext(
    "your {label} record ({n:,} entry)", "your {label} record ({n:,} entries)"
)
PART = _("{section}: {label}")
PART_FIELDS = _("{section}: {label} ({fields})")
# Translators: {n} counts the entries stored under the name {label}.
PART_ENTRIES = _("{section}: {n:,} {label}")


# Rounds of erasure steps before giving up (one is enough unless something kept writing).
SWEEPS = 3


class ErasureIncomplete(Exception):
    """Erasure steps ran, yet a table still names the person; the marker stays."""

    def __init__(self, left: Sequence[str]) -> None:
        super().__init__(f"still named in {', '.join(left)}")


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure removed beyond the cogs' own data."""

    dropped_messages: int
    redacted_posts: int
    checkpointed: bool
    media: MediaErasure | None = None


class PersonalData:
    """Export and erasure over every cog that stores personal data, plus the core's rows."""

    def __init__(
        self,
        registry: Registry,
        volunteers: VolunteerRepo,
        outbox: OutboxRepo,
        db: Database,
        renderers: Renderers,
        direct_chats: DirectChatRepo | None = None,
        uploads: Uploads | None = None,
        erasures: ErasureRepo | None = None,
    ) -> None:
        self.registry = registry
        self.volunteers = volunteers
        self.outbox = outbox
        self.db = db
        self.direct_chats = direct_chats or DirectChatRepo(db)
        self.uploads = uploads or Uploads(UploadRepo(db))
        self.erasures = erasures or ErasureRepo(db)
        self.renderers = renderers

    def holders(self) -> list[Cog]:
        """The loaded cogs that store personal data, in erasure order."""
        return sorted(
            (cog for cog in self.registry.cogs if cog.personal_data), key=lambda c: c.erase_order
        )

    async def collect(self, user: UserRef) -> dict[str, Any]:
        """Everything stored about ``user``: one section per cog, then the core's messages.

        Sections with nothing in them are left out, so an empty result means nothing is kept.
        """
        stored: dict[str, Any] = {}
        for cog in self.holders():
            data = await cog.export_data(user)
            if has_data(data):
                stored.setdefault(section_name(cog), {}).update(data)
        messages = await self.outbox.addressed_to(user.platform, user.external_id)
        if messages:
            stored[MESSAGES] = [self._message(row) for row in messages]
        posts = [
            row
            for row in await self.outbox.naming(user.platform, user.external_id)
            if row.id not in {m.id for m in messages}  # those are listed above
        ]
        if posts:
            stored[POSTS] = [self._message(row) for row in posts]
        chats = await self.direct_chats.export(user)
        if chats:
            stored[DIRECT_CHATS] = chats
        files = await self.uploads.repo.export(user)
        if files:
            stored[FILES] = files
        return stored

    def _message(self, row: OutboxMessage) -> dict[str, Any]:
        """One outbox row as the export shows it: in words, as it was or will be posted."""
        try:
            text = self.renderers.words(row.kind, json.loads(row.body)).plain()
        except UnknownKind:  # its cog is not loaded: show the facts as stored
            text = row.body
        return {
            "where": row.target,
            "key": row.key,
            "text": text,
            "attachment": row.attachment_name,
            "queued_at": row.created_at,
            "due_at": row.due_at,
            "sent_at": row.sent_at,
        }

    async def erase(self, user: UserRef, ctx: Ctx | None = None) -> Erasure:
        """Erase ``user`` everywhere, so that nothing they do meanwhile can write them back.

        First the marker (see :mod:`storage.erasure`): from its commit on, every write made
        for the person is refused, in every process. Then each cog in order, the direct
        chats and the outbox, each step idempotent, swept again until no table names them;
        the marker goes with the sweep that finds nothing, then the file's log is folded in.
        A failure or a kill leaves the marker, and the next attempt (a retry, or any
        process starting) does it all again.
        """
        with unguarded():
            await self.erasures.begin(user, ctx.now if ctx else datetime.now(UTC))
            media = await self.uploads.erase(user)
            dropped = redacted = 0
            left: list[str] = []
            for _ in range(SWEEPS):
                for cog in self.holders():
                    await cog.erase_data(user, ctx)
                await self.direct_chats.forget(user)
                dropped += await self.outbox.drop_for(user.platform, user.external_id)
                redacted += await self.outbox.redact(
                    user.platform, user.external_id, FORMER_VOLUNTEER
                )
                left = await self.erasures.finish(user)
                if not left:
                    break
                log.warning("erasure: %s still named someone; sweeping again", ", ".join(left))
            else:
                raise ErasureIncomplete(left)
        checkpointed = await self.db.checkpoint()
        return Erasure(dropped, redacted, checkpointed, media)

    async def resume(self) -> int:
        """Finish every erasure that a stopped or killed process began; how many it finished."""
        finished = 0
        for person in await self.erasures.pending():
            try:
                await self.erase(person)
            except Exception:
                log.exception("erasure: finishing one left unfinished failed; retried later")
            else:
                finished += 1
        if finished:
            log.info("erasure: finished %d erasure(s) left unfinished", finished)
        return finished


def section_name(cog: Cog) -> str:
    """The export section a cog's data goes under: its command group, else its class."""
    return cog.group or type(cog).__name__.lower()


def has_data(value: object) -> bool:
    """Whether a JSON-ready value holds anything (empty dicts, lists and None do not)."""
    if isinstance(value, Mapping):
        return any(has_data(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(has_data(v) for v in value)
    return value is not None and value != ""


def describe(stored: Mapping[str, Any]) -> list[Markup]:
    """Plain words for what an export holds, one phrase per kind of thing.

    ``{"volunteer": {"volunteer": {"roles": [...]}}}`` reads "your `volunteer` record
    (`roles`)"; a list reads as a count: ``{"task": {"claimed": [1, 2]}}`` is "`task`: 2
    `claimed`". The sections and keys are the names the cogs store their data under, as code
    and as they are in the export file, whatever the reader's language.
    """
    phrases: list[Markup] = []
    for section, data in stored.items():
        if section in CORE_PHRASES:
            phrases.append(Markup.format(CORE_PHRASES[section], n=len(data)))
            continue
        for key, value in data.items():
            if not has_data(value):
                continue
            label, part = _name(key), _name(section)
            if isinstance(value, Mapping):
                fields = COMMA.join(_name(k) for k, v in value.items() if has_data(v))
                template = RECORD_FIELDS if key == section else PART_FIELDS
                phrases.append(Markup.format(template, section=part, label=label,
                                             fields=fields))  # fmt: skip
            elif isinstance(value, Sequence) and not isinstance(value, str):
                template = RECORD_ENTRIES if key == section else PART_ENTRIES
                phrases.append(Markup.format(template, section=part, label=label,
                                             n=len(value)))  # fmt: skip
            else:
                template = RECORD if key == section else PART
                phrases.append(Markup.format(template, section=part, label=label))
    return phrases


def _name(key: str) -> Markup:
    """A name as it stands in the export file, as code: the same in every language."""
    return Markup.format("`{key}`", key=key)


def to_json(document: Mapping[str, Any]) -> bytes:
    """An export as readable UTF-8 JSON."""
    return json.dumps(document, indent=2, ensure_ascii=False, default=_jsonable).encode()


def _jsonable(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Markup):
        return value.plain()
    return str(value)
