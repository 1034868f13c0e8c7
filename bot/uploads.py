"""Files the bot uploaded for one person, and the adapters that can delete them again."""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from bot.domain import UserRef
from bot.domain.i18n import _
from storage.uploads import Upload, UploadRepo

log = logging.getLogger(__name__)

# Why files stay, as the answer to an erasure says it ("… could not be deleted: {why}").
NOT_CONNECTED = _("the bot is not connected to that platform right now")
UNREACHABLE = _("the homeserver could not be reached")


@dataclass(frozen=True, slots=True)
class MediaErasure:
    """What deleting a person's files achieved: how many went, how many stay, and why."""

    deleted: int
    kept: int
    why: str = ""  # a marked message, or words of the platform's own


# Deletes the files (and the messages that carried them) where the platform allows it.
MediaEraser = Callable[[list[Upload]], Awaitable[MediaErasure]]


class Uploads:
    """Records the files adapters upload for people and deletes them on erasure."""

    def __init__(self, repo: UploadRepo) -> None:
        self.repo = repo
        self._erasers: dict[str, MediaEraser] = {}

    def register(self, platform: str, eraser: MediaEraser) -> None:
        """Let ``eraser`` delete the files uploaded on ``platform``."""
        self._erasers[platform] = eraser

    async def uploaded(self, user: UserRef, uri: str, room_id: str, now: datetime) -> int:
        """Record a file just uploaded for ``user``; returns its record id."""
        return await self.repo.record(user, uri, room_id, None, now)

    async def sent(self, upload_id: int, event_id: str) -> None:
        """Record the message that carried an uploaded file."""
        await self.repo.carried(upload_id, event_id)

    async def erase(self, user: UserRef) -> MediaErasure | None:
        """Delete the person's files where possible, then their record; None if there were none.

        The record goes even when a file cannot be deleted: the answer says so instead.
        """
        uploads = await self.repo.of(user)
        if not uploads:
            return None
        eraser = self._erasers.get(user.platform)
        if eraser is None:
            outcome = MediaErasure(0, len(uploads), NOT_CONNECTED)
        else:
            try:
                outcome = await eraser(uploads)
            except Exception as exc:
                log.warning("deleting uploaded files failed (%s)", type(exc).__name__)
                outcome = MediaErasure(0, len(uploads), UNREACHABLE)
        await self.repo.forget(user)
        return outcome
