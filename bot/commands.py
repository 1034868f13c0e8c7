"""Declaring commands once: the Cog base, ``@command``, ``@requires`` and the specs they build.

A command is an ordinary async method. Its typed parameters are the whole declaration::

    @command()
    async def claim(self, ctx: Ctx, id: Annotated[int, Param("Task number", min=1)]) -> Reply:
        \"\"\"Take a task from the queue.\"\"\"

Parameters before a bare ``*`` are positional in text commands; those after it are
``--options``. Discord options, text parsing, ``help`` and usage lines are generated from it.
"""

import inspect
import keyword
import re
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from bot.context import Ctx
from bot.domain import UserRef
from bot.params import Kind, Param, kind_for

if TYPE_CHECKING:
    from bot.services import Services

NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
MAX_DESCRIPTION = 100
MAX_OPTIONS = 25
MAX_CHOICES = 25
KNOWN_RIGHTS = frozenset({"coordinator"})

Handler = Callable[..., Awaitable[Any]]


class SpecError(TypeError):
    """A command declaration that no platform could carry."""


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One parameter of a command."""

    name: str
    kind: Kind
    param: Param
    required: bool
    default: Any
    positional: bool
    # The handler's parameter: the name, or ``in_`` for an option named ``in`` (a keyword).
    attr: str = ""

    @property
    def keyword(self) -> str:
        """The handler's keyword argument for this parameter."""
        return self.attr or self.name

    @property
    def option(self) -> str:
        """The text form of a keyword option: ``--source-language``."""
        return "--" + self.name.replace("_", "-")

    @property
    def description(self) -> str:
        """The one-line description shown in help and on Discord."""
        return self.param.description

    @property
    def choices(self) -> tuple[str, ...]:
        """Allowed values, for enum kinds."""
        return self.kind.choices

    @property
    def rest(self) -> bool:
        """Whether this parameter takes the rest of the line."""
        return self.param.rest


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command as every platform sees it."""

    group: str | None
    name: str
    description: str
    args: tuple[ArgSpec, ...]
    requires: frozenset[str]
    private: bool
    default: bool
    func: Handler = field(repr=False, compare=False)
    # Only the caller may see the answer (a data export); implies ``private``.
    confidential: bool = False

    @property
    def qualified_name(self) -> str:
        """``task claim``, or ``help`` for a top-level command."""
        return f"{self.group} {self.name}" if self.group else self.name

    def usage(self, kind_word: Callable[[str], str] | None = None) -> str:
        """A usage line generated from the parameters, e.g. ``task claim <id>``.

        An option's value is shown by its kind (``--limit <number>``), written by ``kind_word``
        when given (in the reader's language), else by the kind's name.
        """
        parts = [self.qualified_name]
        for arg in self.args:
            shown = arg.name.replace("_", "-") + ("…" if arg.rest else "")
            if arg.positional:
                parts.append(f"<{shown}>" if arg.required else f"[{shown}]")
            elif arg.kind.wire == "boolean":
                parts.append(f"[{arg.option}]")
            else:
                value = (
                    "|".join(arg.choices) if 0 < len(arg.choices) <= 5
                    else kind_word(arg.kind.name) if kind_word is not None
                    else arg.kind.name
                )  # fmt: skip
                parts.append(
                    f"{arg.option} <{value}>" if arg.required else f"[{arg.option} <{value}>]"
                )
        return " ".join(parts)


_PENDING = "__command_spec__"
_REQUIRES = "__command_requires__"


def command(
    name: str | None = None,
    *,
    private: bool = False,
    confidential: bool = False,
    default: bool = False,
) -> Callable[[Handler], Handler]:
    """Mark a cog method as a command; ``default`` makes it answer the bare group name.

    ``private``: the answer is quiet, only the caller needs it. ``confidential``: only the
    caller may see it (see :class:`bot.context.Reply`).
    """

    def mark(func: Handler) -> Handler:
        setattr(func, _PENDING, {"name": name or func.__name__,
                                 "private": private or confidential,
                                 "confidential": confidential, "default": default})  # fmt: skip
        return func

    return mark


def requires(*rights: str) -> Callable[[Handler], Handler]:
    """Restrict a command to callers with these rights (``"coordinator"``)."""
    unknown = set(rights) - KNOWN_RIGHTS
    if unknown:
        raise SpecError(f"unknown rights {sorted(unknown)}; known: {sorted(KNOWN_RIGHTS)}")

    def mark(func: Handler) -> Handler:
        setattr(func, _REQUIRES, frozenset(rights) | getattr(func, _REQUIRES, frozenset()))
        return func

    return mark


def build_spec(group: str | None, func: Handler) -> CommandSpec:
    """Read a handler's signature into a validated spec; raises SpecError if it cannot be."""
    meta = getattr(func, _PENDING)
    where = f"{func.__module__}.{func.__qualname__}"
    hints = typing.get_type_hints(func, include_extras=True)
    args: list[ArgSpec] = []
    params = list(inspect.signature(func).parameters.values())
    if len(params) < 2 or params[1].name != "ctx":
        raise SpecError(f"{where}: a command takes (self, ctx, ...)")
    for p in params[2:]:
        args.append(_arg_spec(where, p, hints.get(p.name)))
    description = inspect.getdoc(func) or ""
    spec = CommandSpec(
        group=group,
        name=meta["name"],
        description=description.splitlines()[0] if description else "",
        args=tuple(args),
        requires=getattr(func, _REQUIRES, frozenset()),
        private=meta["private"],
        default=meta["default"],
        func=func,
        confidential=meta["confidential"],
    )
    validate(spec, where)
    return spec


def _arg_spec(where: str, p: inspect.Parameter, hint: Any) -> ArgSpec:
    if typing.get_origin(hint) is not Annotated:
        raise SpecError(f"{where}: parameter {p.name!r} needs Annotated[T, Param(...)]")
    base, *extras = typing.get_args(hint)
    param = next((e for e in extras if isinstance(e, Param)), None)
    if param is None:
        raise SpecError(f"{where}: parameter {p.name!r} has no Param(...)")
    optional = False
    if typing.get_origin(base) in (types.UnionType, typing.Union):
        members = [a for a in typing.get_args(base) if a is not type(None)]
        optional = len(members) < len(typing.get_args(base))
        if len(members) != 1:
            raise SpecError(f"{where}: parameter {p.name!r} mixes types {members}")
        base = members[0]
    try:
        kind = kind_for(base)
    except TypeError as exc:
        raise SpecError(f"{where}: parameter {p.name!r}: {exc}") from None
    has_default = p.default is not inspect.Parameter.empty
    if optional and not has_default:
        raise SpecError(f"{where}: optional parameter {p.name!r} needs a default")
    if p.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
        raise SpecError(f"{where}: parameter {p.name!r} must be a plain or keyword-only one")
    # A trailing underscore lets a parameter be named after a Python keyword: in_ -> in.
    public = p.name[:-1] if p.name.endswith("_") and keyword.iskeyword(p.name[:-1]) else p.name
    return ArgSpec(
        name=public,
        kind=kind,
        param=param,
        required=not has_default,
        default=p.default if has_default else None,
        positional=p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD,
        attr=p.name,
    )


def validate(spec: CommandSpec, where: str) -> None:
    """Check a spec against what Discord (the strictest platform) accepts."""
    problems: list[str] = []
    for label, name in (("group", spec.group), ("command", spec.name)):
        if name is not None and not NAME.match(name):
            problems.append(f"{label} name {name!r} must match {NAME.pattern}")
    if not 1 <= len(spec.description) <= MAX_DESCRIPTION:
        problems.append(f"description must be 1..{MAX_DESCRIPTION} characters (the docstring)")
    if len(spec.args) > MAX_OPTIONS:
        problems.append(f"{len(spec.args)} parameters; at most {MAX_OPTIONS}")
    seen_optional = False
    rests = [a for a in spec.args if a.rest]
    for arg in spec.args:
        if not NAME.match(arg.name):
            problems.append(f"parameter name {arg.name!r} must match {NAME.pattern}")
        if not 1 <= len(arg.description) <= MAX_DESCRIPTION:
            problems.append(f"parameter {arg.name!r}: description must be 1..{MAX_DESCRIPTION}")
        if len(arg.choices) > MAX_CHOICES:
            problems.append(f"parameter {arg.name!r}: {len(arg.choices)} choices; at most 25")
        if arg.required and seen_optional:
            problems.append(f"required parameter {arg.name!r} follows an optional one")
        seen_optional |= not arg.required
        if arg.rest and (arg.kind.wire != "string" or not arg.positional):
            problems.append(f"parameter {arg.name!r}: only a positional text can take the rest")
    if len(rests) > 1 or (rests and [a for a in spec.args if a.positional][-1] is not rests[0]):
        problems.append("only the last positional parameter may take the rest of the line")
    if problems:
        raise SpecError(f"{where}: " + "; ".join(problems))


class Cog:
    """A platform-free command module.

    Subclasses set ``group`` (the command group name; None for top-level commands) and get
    their repositories and services in ``__init__``. A cog that stores anything about people
    must say how to export and erase it: implement ``export_data`` and ``erase_data``, or set
    ``personal_data = False``.
    """

    group: ClassVar[str | None] = None
    personal_data: ClassVar[bool] = True
    # Erasure runs in ascending order: cogs that refer to volunteers go before the one that
    # deletes them.
    erase_order: ClassVar[int] = 0
    # The duty whose lease runs this cog's background work (start/stop) when several
    # processes share a database; None: it has none, and starts with the bot.
    duty: ClassVar[str | None] = None
    specs: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, services: "Services") -> None:
        """Subclasses keep the repositories and services they use."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.personal_data and (
            cls.export_data is Cog.export_data or cls.erase_data is Cog.erase_data
        ):
            raise SpecError(
                f"{cls.__qualname__} stores personal data: implement export_data and "
                "erase_data, or set personal_data = False"
            )
        cls.specs = tuple(
            build_spec(cls.group, member)
            for member in vars(cls).values()
            if callable(member) and hasattr(member, _PENDING)
        )
        defaults = [s for s in cls.specs if s.default]
        if len(defaults) > 1:
            raise SpecError(f"{cls.__qualname__}: more than one default command")
        if cls.group is not None and not cls.__doc__:
            raise SpecError(f"{cls.__qualname__}: a command group needs a docstring")

    @property
    def description(self) -> str:
        """The group description: the first docstring line."""
        return (inspect.getdoc(type(self)) or "").splitlines()[0][:MAX_DESCRIPTION]

    async def start(self) -> None:
        """Start background work; called once the bot runs."""

    async def stop(self) -> None:
        """Stop background work."""

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        """Everything this cog stores about ``user``, JSON-ready."""
        return {}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        """Erase or anonymise everything this cog stores about ``user``."""
