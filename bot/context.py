"""The neutral types cogs see: who is acting, where, and what the bot answers."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain import Markup, UserRef


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
    """What a command answers. ``private`` replies are ephemeral where the platform can."""

    body: Markup
    private: bool = False
    is_error: bool = False
    buttons: Sequence[Button] = ()
    attachments: Sequence[Attachment] = ()
    mentions: Sequence[UserRef] = ()
    # Set by commands that create something a reaction or button can act on later,
    # e.g. ("task", 7); adapters remember the message that carried it.
    subject: tuple[str, int] | None = None

    @classmethod
    def text(cls, template: str, /, **values: object) -> "Reply":
        """A public reply from a trusted template with untrusted values."""
        return cls(Markup.format(template, **values))


@dataclass(slots=True)
class Ctx:
    """Everything a command handler may know about its invocation."""

    actor: Actor
    place: Place
    now: datetime
    raw: str = ""
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def user(self) -> UserRef:
        """Shorthand for the acting user."""
        return self.actor.user
