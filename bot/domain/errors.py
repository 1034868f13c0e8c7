"""Failures with words for people; the core renders them as friendly private replies."""

from bot.domain.markup import Markup


class UserError(Exception):
    """Something the user can fix. The message quotes their input and says what would work.

    Input is quoted as ``bot.domain.text.preview(...)``: short, one line and inert.
    """

    title = "That did not work"

    def __init__(self, template: str, /, **values: object) -> None:
        self.markup = Markup.format(template, **values)
        super().__init__(self.markup.plain())


class BadArgument(UserError):
    """Input that does not parse or is out of range."""

    title = "I could not read that"


class NotFound(UserError):
    """A task, reminder, volunteer or command that does not exist."""

    title = "Not found"


class Conflict(UserError):
    """The state does not allow it (already claimed, already done, ...)."""

    title = "Not possible right now"


class NotPermitted(UserError):
    """The caller lacks the right."""

    title = "Not allowed"
