"""Writes the audit trail: one line for every coordinator-only command anyone runs."""

import enum
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from bot.commands import CommandSpec
from bot.context import Ctx
from bot.domain import UserRef
from bot.domain.text import preview
from bot.logs import describe_error
from storage.acting import ErasurePending
from storage.audit import AuditEntry, AuditRepo

log = logging.getLogger(__name__)

DETAIL_LIMIT = 300
VALUE_LIMIT = 60


class Outcome(enum.StrEnum):
    """How a command ended."""

    DONE = "done"
    REFUSED = "refused"  # the caller lacks the right
    FAILED = "failed"  # a user error: unknown id, bad state, bad input
    ERROR = "error"  # the bot failed


def audited(spec: CommandSpec) -> bool:
    """Whether a command leaves a line in the trail."""
    return "coordinator" in spec.requires


def describe(spec: CommandSpec, values: Mapping[str, object]) -> tuple[str, UserRef | None]:
    """The arguments given, shortened (``id=3 user=Bob``), and the person they name, if any."""
    parts: list[str] = []
    subject: UserRef | None = None
    for arg in spec.args:
        value = values.get(arg.keyword, values.get(arg.name))
        if value is None or value is False or value == arg.default:
            continue
        if isinstance(value, UserRef):
            subject = value
        parts.append(f"{arg.name}={_shown(value)}")
    detail = " ".join(parts)
    return (detail if len(detail) <= DETAIL_LIMIT else detail[: DETAIL_LIMIT - 1] + "…"), subject


def _shown(value: object) -> str:
    if value is True:
        return "yes"
    if isinstance(value, UserRef):
        text = value.label
    elif isinstance(value, enum.Enum):
        text = str(value.value)
    elif isinstance(value, datetime):
        text = value.isoformat(timespec="minutes")
    elif isinstance(value, timedelta):
        text = f"{int(value.total_seconds())}s"
    elif isinstance(value, list | tuple | frozenset | set):
        text = ",".join(_shown(v) for v in value)
    else:
        # A refused command's values are as typed: no controls, no lone surrogates, one line.
        text = preview(str(value), VALUE_LIMIT - 1)
    if len(text) > VALUE_LIMIT:
        text = text[: VALUE_LIMIT - 1] + "…"
    return f'"{text}"' if " " in text else text


class Auditor:
    """Turns a finished command into a line of the trail."""

    def __init__(self, repo: AuditRepo) -> None:
        self.repo = repo

    async def record(
        self, ctx: Ctx, spec: CommandSpec, values: Mapping[str, object], outcome: Outcome
    ) -> None:
        """Write the line; a failure to write is logged, never shown to the caller."""
        detail, subject = describe(spec, values)
        entry = AuditEntry(
            at=ctx.now,
            actor=ctx.user,
            actor_name=ctx.user.label,
            command=spec.qualified_name,
            detail=detail,
            place=ctx.place.target,
            place_private=ctx.place.is_private,
            outcome=outcome.value,
            subject=subject,
        )
        try:
            await self.repo.record(entry)
        except ErasurePending:
            log.debug("audit line for %s not written: an erasure is pending", spec.qualified_name)
        except Exception as exc:
            log.error("audit line for %s not written (%s)", spec.qualified_name,
                      describe_error(exc))  # fmt: skip
