"""Time as a dependency, so tests can move it."""

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the current time as an aware UTC datetime."""

    def now(self) -> datetime:
        """The current time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """The time it was set to."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward and return the new time."""
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to a moment."""
        self._now = moment.astimezone(UTC)
