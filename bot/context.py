"""The neutral types cogs see: who is acting, where, and what the bot answers."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain import Markup, UserRef
from bot.domain.i18n import ENGLISH, Reader


@dataclass(frozen=True, slots=True)
class Actor:
    """The person who sent a command, with the rights the adapter recognised."""

    user: UserRef
    is_coordinator: bool = False

    def __repr__(self) -> str:
        return f"Actor(platform={self.user.platform!r}, coordinator={self.is_coordinator})"


@dataclass(frozen=True, slots=True)
class Place:
    """Where a command came from and where bot posts about it go.

    ``target`` is the outbox address, e.g. ``"console"``, ``"matrix:!room:server"`` or
    ``"discord:1234"``.
    """

    target: str
    is_private: bool = False
    # The Discord server a channel belongs to (its language may be configured for all of it).
    server: str | None = None

    @property
    def platform(self) -> str:
        """The platform part of the target."""
        return self.target.partition(":")[0]


@dataclass(frozen=True, slots=True)
class Button:
    """A button under a reply that runs ``command`` (a text command line) for whoever clicks."""

    label: str
    command: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a reply where the platform supports it."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Reply:
    """What a command answers: public, quiet (``private``) or ``confidential``.

    A *quiet* reply is one only the caller needs (their own task list, an error): ephemeral on
    Discord, a threaded reply on Matrix, where the room can still see it. A *confidential*
    reply is one only the caller may see (their data export): ephemeral on Discord, an
    encrypted direct chat on Matrix. Confidential implies private.
    """

    body: Markup
    private: bool = False
    confidential: bool = False
    is_error: bool = False
    buttons: Sequence[Button] = ()
    attachments: Sequence[Attachment] = ()
    mentions: Sequence[UserRef] = ()
    # Set by commands that create something a reaction or button can act on later,
    # e.g. ("task", 7); adapters remember the message that carried it.
    subject: tuple[str, int] | None = None
    # Who it is written for, once the core rendered it for them (adapters add their hints
    # in the same language).
    reader: Reader = ENGLISH

    def __post_init__(self) -> None:
        if self.confidential and not self.private:
            object.__setattr__(self, "private", True)

    @classmethod
    def text(
        cls, template: str, /, *, private: bool = False, confidential: bool = False,
        **values: object,
    ) -> "Reply":  # fmt: skip
        """A reply from a trusted template with untrusted values (public unless marked)."""
        return cls(Markup.format(template, **values), private=private, confidential=confidential)


@dataclass(slots=True)
class Ctx:
    """Everything a command handler may know about its invocation."""

    actor: Actor
    place: Place
    now: datetime
    raw: str = ""
    extras: dict[str, object] = field(default_factory=dict)
    # The language the person's client is set to, where the platform says (Discord).
    client_language: str | None = None
    # Who the answer is rendered for; the core sets it before the command runs.
    reader: Reader = ENGLISH

    @property
    def user(self) -> UserRef:
        """Shorthand for the acting user."""
        return self.actor.user
