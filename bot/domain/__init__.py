"""The leaf of the project: neutral types and pure domain rules, importing nothing else of it.

Storage, the core, cogs and adapters all speak these types; nothing here knows a database, a
platform or a cog. The task lifecycle rules are in :mod:`bot.domain.tasks`.
"""

from bot.domain.errors import BadArgument, Conflict, NotFound, NotPermitted, UserError
from bot.domain.markup import Markup
from bot.domain.people import UserRef
from bot.domain.vocab import (
    COUNTRIES,
    COUNTRY_ALIASES,
    KIND_ROLE,
    LANGUAGES,
    Priority,
    Role,
    TaskKind,
    TaskStatus,
)

__all__ = [
    "COUNTRIES",
    "COUNTRY_ALIASES",
    "KIND_ROLE",
    "LANGUAGES",
    "BadArgument",
    "Conflict",
    "Markup",
    "NotFound",
    "NotPermitted",
    "Priority",
    "Role",
    "TaskKind",
    "TaskStatus",
    "UserError",
    "UserRef",
]
