"""See, export and erase what the bot stores about you; purge inactive volunteers daily."""

import logging
from datetime import datetime, timedelta
from typing import Annotated

from bot.background import Periodic
from bot.commands import Cog, command
from bot.context import Attachment, Button, Ctx, Reply
from bot.domain import Markup
from bot.params import Param
from bot.privacy import FORMER_VOLUNTEER, PersonalData, describe, to_json
from bot.services import Services
from bot.uploads import MediaErasure

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(days=1)
RETRY_AFTER = timedelta(hours=1)
EXPORT_FILE = "mydata.json"
CONFIRM_LABEL = "Yes, erase my data"
CONFIRM_COMMAND = "privacy forget --confirm"


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
                "I store nothing about you. If you join as a volunteer, `privacy mydata` will "
                "show what I keep; the attached `{file}` is the (empty) export.",
                file=EXPORT_FILE,
            )
        else:
            body = Markup.format(
                "**What I store about you:** {what}. I keep it so coordinators can match "
                "volunteers to tasks by role, language and country and reach you about your "
                "tasks, and for nothing else. It stays until you erase it, and is erased "
                "automatically after {days} days without a command from you. Every value is "
                "in the attached `{file}`. To erase it all now, run `privacy forget`.",
                what="; ".join(describe(stored)),
                days=self.retention.days,
                file=EXPORT_FILE,
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
        what = "; ".join(describe(stored))
        if not confirm:
            if not stored:
                return Reply.text("I store nothing about you, so there is nothing to erase.")
            return Reply(
                Markup.format(
                    "This permanently erases what I store about you: {what}. Tasks you claimed "
                    "go back to the queue, and where shared history or tasks you created "
                    "mention you, it will say “{former}”. It cannot be undone. To go ahead, "
                    "run `{confirm}` or press the button.",
                    what=what,
                    former=FORMER_VOLUNTEER,
                    confirm=CONFIRM_COMMAND,
                ),
                private=True,
                buttons=[Button(CONFIRM_LABEL, CONFIRM_COMMAND)],
            )
        unfinished = await self.personal.erasures.is_pending(ctx.user)
        erasure = await self.personal.erase(ctx.user, ctx)
        if not stored:
            if unfinished:
                return Reply.text(
                    "Done. I finished erasing your data, which an earlier `privacy forget` "
                    "had begun. If you use the bot again, it starts from nothing."
                )
            return Reply.text("I stored nothing about you; there was nothing to erase.")
        return Reply(
            Markup.format(
                "Done. I erased {what}. Tasks you had claimed are open again, and shared "
                "history now says “{former}” where it named you{redacted}.{files} If you use "
                "the bot again, it starts from nothing.",
                what=what,
                files=_files_note(erasure.media),
                former=FORMER_VOLUNTEER,
                redacted=(
                    f" (also in {erasure.redacted_posts} bot post"
                    f"{'' if erasure.redacted_posts == 1 else 's'})"
                    if erasure.redacted_posts
                    else ""
                ),
            ),
            private=True,
        )

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


def _files_note(media: MediaErasure | None) -> str:
    """What became of the files the bot had sent the person, in plain words."""
    if media is None:
        return ""
    note = ""
    if media.deleted:
        note += f" I deleted the {_files(media.deleted)} I had sent only to you."
    if media.kept:
        note += (
            f" {_files(media.kept).capitalize()} I had sent only to you could not be deleted "
            f"from the server: {media.why}."
        )
    return note


def _files(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"
