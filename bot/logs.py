"""Logging set-up that keeps personal data out of the log.

Log calls in this code base carry only command names, platforms, counts and refs. The one
way text from people could still slip in is an exception message (``int('…')`` quotes its
input), so below DEBUG a traceback keeps its frames and exception types and leaves the
messages out.
"""

import errno
import logging
import re
import sys
import traceback
import warnings
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


# Fields an exception may carry that say, in the platform's own terms, what went wrong.
CODE_FIELDS = ("errcode", "status", "status_code", "code", "sqlstate", "sqlite_errorname")
# Text fields written by the platform or by this code (never an exception's free message).
TEXT_FIELDS = ("detail", "text", "strerror")
BRIEF_LIMIT = 160
_SECRETS = (
    (re.compile(r"(?i)\bbearer\s+\S+"), "Bearer ***"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "://***:***@"),
    (re.compile(r"(?i)\b(access_token|token|password|secret)\b([\"']?\s*[=:]\s*[\"']?)[^\s&\"',]+"),
     r"\1\2***"),
)  # fmt: skip


def describe_error(exc: BaseException) -> str:
    """An exception in one short line: its type, codes and the platform's message, no secrets.

    Shown are the fields it carries for that purpose (an HTTP status, a platform error code
    and message such as ``M_FORBIDDEN`` or Discord's ``50013``, an errno, a SQLSTATE); its
    free text is not, since it may quote what someone typed.
    """
    codes: list[str] = []
    for name in CODE_FIELDS:
        with warnings.catch_warnings():  # aiohttp's ``code`` is a deprecated ``status``
            warnings.simplefilter("ignore", DeprecationWarning)
            value = getattr(exc, name, None)
        if isinstance(value, int | str) and not isinstance(value, bool) and value:
            codes += [str(value)] if str(value) not in codes else []
    if isinstance(exc, OSError) and exc.errno:
        codes.append(f"errno {exc.errno} {errno.errorcode.get(exc.errno, '')}".rstrip())
    text = next(
        (v for v in (getattr(exc, n, None) for n in TEXT_FIELDS) if isinstance(v, str) and v),
        None,
    )
    if text is None and codes and isinstance(getattr(exc, "message", None), str):
        text = exc.message  # type: ignore[attr-defined]  # aiohttp: the HTTP reason phrase
    said = " ".join(codes)
    if text:
        said = f"{said}: {text}" if said else text
    for pattern, replacement in _SECRETS:
        said = pattern.sub(replacement, said)
    said = " ".join(said.split())
    if len(said) > BRIEF_LIMIT:
        said = said[: BRIEF_LIMIT - 1] + "…"
    return f"{type(exc).__name__} ({said})" if said else type(exc).__name__
