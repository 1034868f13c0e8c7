"""See, export and erase what the bot stores about you; purge inactive volunteers daily."""

import logging
from datetime import datetime, timedelta
from typing import Annotated

from bot.background import Periodic
from bot.commands import Cog, command
from bot.context import Attachment, Button, Ctx, Reply
from bot.domain import Markup
from bot.domain.i18n import _, ngettext
from bot.domain.markup import cmd
from bot.params import Param
from bot.privacy import PersonalData, describe, to_json
from bot.services import Services
from bot.uploads import MediaErasure

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(days=1)
RETRY_AFTER = timedelta(hours=1)
EXPORT_FILE = "mydata.json"
CONFIRM_LABEL = _("Yes, erase my data")
CONFIRM_COMMAND = "privacy forget --confirm"
# How erased people are named in tasks and history, as the reader's language says it.
FORMER = _("a former volunteer")
LIST = Markup.trusted("; ")
SPACE = Markup.trusted(" ")


class Privacy(Cog):
    """See and erase what the bot stores about you."""

    group = "privacy"
    duty = "retention"
    personal_data = False  # it stores nothing itself; it asks every other cog

    def __init__(self, services: Services) -> None:
        self.personal = PersonalData(
            services.registry,
            services.volunteers,
            services.outbox_repo,
            services.db,
            services.outbox.renderers,
            services.direct_chats,
            services.uploads,
        )
        self.volunteers = services.volunteers
        self.outbox = services.outbox_repo
        self.db = services.db
        self.clock = services.clock
        self.retention = timedelta(days=services.settings.privacy.retention_days)
        self._purger = Periodic(
            "privacy-retention",
            self._purge_now,
            PURGE_EVERY.total_seconds(),
            retry=RETRY_AFTER.total_seconds(),
        )

    @command(confidential=True)
    async def mydata(self, ctx: Ctx) -> Reply:
        """Everything the bot stores about you, as a file."""
        stored = await self.personal.collect(ctx.user)
        document = {
            "exported_at": ctx.now,
            "you": {"platform": ctx.user.platform, "id": ctx.user.external_id},
            "stored": stored,
        }
        attachment = Attachment(EXPORT_FILE, to_json(document), "application/json")
        if not stored:
            body = Markup.format(
                # Translators: {command} is the command that shows it, {file} a file name.
                _(
                    "I store nothing about you. If you join as a volunteer, {command} will "
                    "show what I keep; the attached `{file}` is the (empty) export."
                ),
                command=cmd("privacy mydata"),
                file=EXPORT_FILE,
            )
        else:
            body = Markup.format(
                # Translators: {what} lists the kinds of data, separated by semicolons; {file}
                # is a file name, {command} the command that erases it all.
                ngettext(
                    "**What I store about you:** {what}. I keep it so coordinators can match "
                    "volunteers to tasks by role, language and country and reach you about "
                    "your tasks, and for nothing else. It stays until you erase it, and is "
                    "erased automatically after {days:,} day without a command from you. Every "
                    "value is in the attached `{file}`. To erase it all now, run {command}.",
                    "**What I store about you:** {what}. I keep it so coordinators can match "
                    "volunteers to tasks by role, language and country and reach you about "
                    "your tasks, and for nothing else. It stays until you erase it, and is "
                    "erased automatically after {days:,} days without a command from you. "
                    "Every value is in the attached `{file}`. To erase it all now, run "
                    "{command}.",
                    count="days",
                ),
                what=LIST.join(describe(stored)),
                days=self.retention.days,
                file=EXPORT_FILE,
                command=cmd("privacy forget"),
            )
        return Reply(body, confidential=True, attachments=[attachment])

    @command(private=True)
    async def forget(
        self,
        ctx: Ctx,
        *,
        confirm: Annotated[bool, Param("Yes, erase everything stored about me")] = False,
    ) -> Reply:
        """Erase everything the bot stores about you."""
        stored = await self.personal.collect(ctx.user)
        what = LIST.join(describe(stored))
        if not confirm:
            if not stored:
                return Reply.text(_("I store nothing about you, so there is nothing to erase."))
            return Reply(
                Markup.format(
                    # Translators: {what} lists the kinds of data, separated by semicolons;
                    # {former} is how erased people are named; {command} erases it.
                    _(
                        "This permanently erases what I store about you: {what}. Tasks you "
                        "claimed go back to the queue, and where shared history or tasks you "
                        "created mention you, it will say “{former}”. It cannot be undone. To "
                        "go ahead, run {command} or press the button."
                    ),
                    what=what,
                    former=FORMER,
                    command=cmd("privacy forget", confirm=True),
                ),
                private=True,
                buttons=[Button(CONFIRM_LABEL, CONFIRM_COMMAND)],
            )
        unfinished = await self.personal.erasures.is_pending(ctx.user)
        erasure = await self.personal.erase(ctx.user, ctx)
        if not stored:
            if unfinished:
                return Reply.text(
                    _(
                        "Done. I finished erasing your data, which an earlier {command} had "
                        "begun. If you use the bot again, it starts from nothing."
                    ),
                    command=cmd("privacy forget"),
                )
            return Reply.text(_("I stored nothing about you; there was nothing to erase."))
        if erasure.redacted_posts:
            history = Markup.format(
                # Translators: {former} is how erased people are named; {n} counts bot posts.
                ngettext(
                    "Tasks you had claimed are open again, and shared history now says "
                    "“{former}” where it named you (also in {n:,} bot post).",
                    "Tasks you had claimed are open again, and shared history now says "
                    "“{former}” where it named you (also in {n:,} bot posts).",
                ),
                former=FORMER, n=erasure.redacted_posts,
            )  # fmt: skip
        else:
            history = Markup.format(
                # Translators: {former} is how erased people are named.
                _(
                    "Tasks you had claimed are open again, and shared history now says "
                    "“{former}” where it named you."
                ),
                former=FORMER,
            )
        sentences = [
            Markup.format(_("Done. I erased {what}."), what=what),
            history,
            *_files_note(erasure.media),
            Markup.format(_("If you use the bot again, it starts from nothing.")),
        ]
        return Reply(SPACE.join(sentences), private=True)

    async def purge_inactive(self, now: datetime) -> int:
        """Erase every volunteer inactive for longer than the retention period.

        Delivered bot messages older than that lose their text too. Returns how many
        volunteers were erased.
        """
        cutoff = now - self.retention
        await self.personal.resume()  # any a killed process left half done
        cleared = await self.outbox.clear_sent_before(cutoff)
        purged = 0
        for person in await self.volunteers.inactive_since(cutoff):
            try:
                await self.personal.erase(person)
            except Exception:
                log.exception("retention: erasing an inactive volunteer failed; retried tomorrow")
            else:
                purged += 1
        # Erasures checkpoint already; this also covers cleared messages, and a checkpoint
        # that an earlier erasure found busy.
        await self.db.checkpoint()
        log.info(
            "retention: purged %d inactive volunteer record(s), cleared %d old message(s)",
            purged,
            cleared,
        )
        return purged

    async def start(self) -> None:
        """Run the retention purge now and then once a day."""
        self._purger.start()

    async def stop(self) -> None:
        """Stop the daily purge."""
        await self._purger.stop()

    async def _purge_now(self) -> None:
        await self.purge_inactive(self.clock.now())


def _files_note(media: MediaErasure | None) -> list[Markup]:
    """What became of the files the bot had sent the person, in plain words."""
    if media is None:
        return []
    note: list[Markup] = []
    if media.deleted:
        note.append(Markup.format(
            ngettext("I deleted the {n:,} file I had sent only to you.",
                     "I deleted the {n:,} files I had sent only to you."),
            n=media.deleted,
        ))  # fmt: skip
    if media.kept:
        note.append(Markup.format(
            # Translators: {why} says why the server kept them ("the homeserver refused").
            ngettext(
                "{n:,} file I had sent only to you could not be deleted from the server: {why}.",
                "{n:,} files I had sent only to you could not be deleted from the server: {why}.",
            ),
            n=media.kept, why=media.why,
        ))  # fmt: skip
    return note
