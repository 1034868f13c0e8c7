"""Logging set-up that keeps personal data out of the log.

Log calls in this code base carry only command names, platforms, counts and refs. The one
way text from people could still slip in is an exception message (``int('…')`` quotes its
input), so below DEBUG a traceback keeps its frames and exception types and leaves the
messages out.
"""

import logging
import sys
import traceback
from collections.abc import Iterator
from types import TracebackType
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
WITHHELD = "(message withheld below DEBUG: it may quote what someone typed)"
# Libraries whose INFO lines may describe jobs or events in their own words.
QUIET_BELOW_DEBUG = ("apscheduler",)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class PrivateFormatter(logging.Formatter):
    """Formats records as usual, but tracebacks without exception messages."""

    def formatException(self, ei: ExcInfo) -> str:
        """A traceback with frames and exception types only."""
        exc = ei[1]
        if exc is None:
            return super().formatException(ei)
        return "".join(_without_messages(traceback.TracebackException.from_exception(exc)))


def _without_messages(te: traceback.TracebackException) -> Iterator[str]:
    if te.__cause__ is not None:
        yield from _without_messages(te.__cause__)
        yield "\nThe above exception was the direct cause of the following exception:\n\n"
    elif te.__context__ is not None and not te.__suppress_context__:
        yield from _without_messages(te.__context__)
        yield "\nDuring handling of the above exception, another exception occurred:\n\n"
    yield "Traceback (most recent call last):\n"
    yield from te.stack.format()
    name = te.exc_type.__qualname__ if te.exc_type is not None else "Exception"
    yield f"{name}: {WITHHELD}"


def configure(level: str, stream: TextIO | None = None) -> None:
    """Log to ``stream`` (stderr) at ``level``; full exception text only at DEBUG."""
    handler = logging.StreamHandler(stream or sys.stderr)
    detailed = level == "DEBUG"
    handler.setFormatter(logging.Formatter(FORMAT) if detailed else PrivateFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(logging.DEBUG if detailed else logging.WARNING)
