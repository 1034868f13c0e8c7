"""Tasks from a CSV file: read and check every row before anything is posted.

The header names the columns (any order, any case): ``kind`` and ``title`` are required;
``language`` (one or several, separated by ``;``), ``source_language``, ``priority``, ``due``,
``description`` and ``source`` may be left out, as a column or in a row. Values go through
the parsers the commands use, so a row reads exactly as ``task post`` would read it.
"""

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.domain import BadArgument, Markup, Priority, TaskKind, UserError
from bot.domain.i18n import _, ngettext
from bot.params import ParseEnv, kind_for, parse_language, parse_language_list, parse_when
from storage.tasks import NewJob, Posted

REQUIRED = ("kind", "title")
OPTIONAL = ("language", "source_language", "priority", "due", "description", "source")
COLUMNS = REQUIRED + OPTIONAL
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_SOURCE = 2000
MAX_PROBLEMS = 20  # bad rows named in one answer; the count says how many there were
# Columns whose values files repeat (parsed once per distinct value), unlike titles.
REPEATED = frozenset({"kind", "language", "source_language", "priority", "due"})
# Called as rows are read: rows done, rows in all.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Row:
    """One good row: the line it starts on and the job it posts, a task per target language."""

    line: int
    job: NewJob


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one value: where it is, and in words."""

    line: int
    column: str | None
    message: Markup

    @property
    def markup(self) -> Markup:
        """Where and what, in words."""
        if self.column:
            # Translators: {column} is a CSV column's name (kind, title, due…), as in the file.
            return Markup.format(_("line {line}, column {column}: {problem}"), line=self.line,
                                 column=self.column, problem=self.message)  # fmt: skip
        return Markup.format(_("line {line}: {problem}"), line=self.line, problem=self.message)

    def __str__(self) -> str:
        return self.markup.plain()


@dataclass(slots=True)
class ImportRefused(Exception):
    """The file cannot be imported as it is; nothing was posted."""

    problems: list[Problem]
    rows: int = 0
    bad_rows: int = field(default=0)

    @property
    def markup(self) -> Markup:
        """Every problem shown (up to MAX_PROBLEMS), one a line, under what it means."""
        shown = self.problems[:MAX_PROBLEMS]
        head = (
            Markup.format(ngettext(
                "{bad:,} of {n:,} row is not right, so nothing was imported:",
                "{bad:,} of {n:,} rows are not right, so nothing was imported:",
            ), bad=self.bad_rows, n=self.rows)
            if self.rows
            else Markup.format(_("nothing was imported:"))
        )  # fmt: skip
        indent = Markup.trusted("  ")
        lines = [head, *(indent + p.markup for p in shown)]
        if len(self.problems) > len(shown):
            lines.append(indent + Markup.format(_("… and {n:,} more"),
                                                n=len(self.problems) - len(shown)))  # fmt: skip
        return Markup.trusted("\n").join(lines)

    def __str__(self) -> str:
        return self.markup.plain()


_KIND = kind_for(TaskKind).parse
_PRIORITY = kind_for(Priority).parse


def _kind(text: str, env: ParseEnv) -> TaskKind:
    value: TaskKind = _KIND(text, env)
    return value


def _priority(text: str, env: ParseEnv) -> Priority:
    value: Priority = _PRIORITY(text, env)
    return value


def _text(limit: int) -> Callable[[str, ParseEnv], str]:
    def parse(text: str, env: ParseEnv) -> str:
        if len(text) > limit:
            raise BadArgument(_("That is {n:,} characters long; the limit is {limit:,}."),
                              n=len(text), limit=limit)  # fmt: skip
        return text

    return parse


def _source(text: str, env: ParseEnv) -> str:
    link = _text(MAX_SOURCE)(text, env)
    if not link.startswith(("https://", "http://")) or " " in link:
        raise BadArgument(_("`{text}` is not a link; give one starting with https://."),
                          text=link[:80])  # fmt: skip
    return link


# How each column is read; the value is given stripped and not empty.
PARSERS: dict[str, Callable[[str, ParseEnv], Any]] = {
    "kind": _kind,
    "title": lambda text, env: " ".join(_text(MAX_TITLE)(text, env).split()),
    "language": lambda text, env: parse_language_list(text),
    "source_language": lambda text, env: parse_language(text),
    "priority": _priority,
    "due": lambda text, env: parse_when(text, env),
    "description": _text(MAX_DESCRIPTION),
    "source": _source,
}


def read_csv(data: bytes, env: ParseEnv, progress: Progress | None = None) -> list[Row]:
    """Every row of the file, checked; raises ImportRefused naming each bad value."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = _line_of(data, exc.start)
        message = Markup.format(_("this is not UTF-8 text; save the file as CSV UTF-8"))
        raise ImportRefused([Problem(where, None, message)]) from None
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        empty = _("the file is empty; the first line names the columns, e.g. kind,title,language")
        raise ImportRefused([Problem(1, None, Markup.format(empty))]) from None
    columns = _columns(header)
    rows: list[Row] = []
    problems: list[Problem] = []
    bad = total = 0
    # Files repeat their kinds, languages and dates: each distinct value is parsed once.
    seen: dict[tuple[str, str], Any] = {}
    try:
        for values in reader:
            line = reader.line_num - values_lines(values) + 1
            if not any(v.strip() for v in values):
                continue  # blank lines are fine
            total += 1
            row, found = _row(line, columns, values, env, seen)
            if found:
                bad += 1
                problems += found
            elif row is not None:
                rows.append(row)
            if progress is not None:
                progress(reader.line_num, lines)
    except csv.Error as exc:
        # Translators: {error} is the CSV reader's own explanation, in English.
        malformed = Markup.format(_("the CSV is malformed ({error})"), error=str(exc))
        problems.append(Problem(reader.line_num, None, malformed))
        bad += 1
    if problems:
        raise ImportRefused(problems, total, bad)
    if not rows:
        none = Markup.format(_("there are no rows under the header"))
        raise ImportRefused([Problem(2, None, none)])
    return rows


def values_lines(values: list[str]) -> int:
    """How many physical lines a row's values took (quoted values may span lines)."""
    return 1 + sum(v.count("\n") for v in values)


def _line_of(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def _columns(header: list[str]) -> list[str]:
    names = [name.strip().lower().replace(" ", "_").replace("-", "_") for name in header]
    problems = [
        Problem(1, name or f"#{i + 1}",
                Markup.format(_("`{name}` is not a column I know; the columns are: {columns}"),
                              name=name, columns=", ".join(COLUMNS)))
        for i, name in enumerate(names) if name not in COLUMNS
    ]  # fmt: skip
    twice = Markup.format(_("the header names this column twice"))
    problems += [Problem(1, name, twice) for name in doubled_columns(names)]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        message = Markup.format(
            ngettext("the header lacks the column {columns}; the first line names the "
                     "columns, e.g. kind,title,language",
                     "the header lacks the columns {columns}; the first line names the "
                     "columns, e.g. kind,title,language"),
            columns=", ".join(missing), n=len(missing),
        )  # fmt: skip
        problems.append(Problem(1, None, message))
    if problems:
        raise ImportRefused(problems)
    return names


def doubled_columns(names: list[str]) -> list[str]:
    """The known columns a header names more than once."""
    return sorted({n for n in names if n in COLUMNS and names.count(n) > 1})


def _row(
    line: int,
    columns: list[str],
    values: list[str],
    env: ParseEnv,
    seen: dict[tuple[str, str], Any],
) -> tuple[Row | None, list[Problem]]:
    if len(values) > len(columns):
        extra = Problem(line, None, Markup.format(
            _("it has {values:,} values and the header {columns:,} columns; quote values that "
              "contain commas"), values=len(values), columns=len(columns)))  # fmt: skip
        return None, [extra]
    raw = {name: value.strip() for name, value in zip(columns, values, strict=False)}
    parsed: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, text in raw.items():
        if not text:
            continue
        key = (name, text)
        value = seen.get(key) if name in REPEATED else None
        if value is None:
            try:
                value = PARSERS[name](text, env)
            except UserError as exc:
                value = exc
            if name in REPEATED:
                seen[key] = value
        if isinstance(value, UserError):
            problems.append(Problem(line, name, value.markup))
        else:
            parsed[name] = value
    problems += [Problem(line, name, Markup.format(_("{name} is required"), name=name))
                 for name in REQUIRED
                 if not raw.get(name) and not any(p.column == name for p in problems)]  # fmt: skip
    problems += _rules(line, parsed, env)
    if problems:
        return None, problems
    job = NewJob(
        kind=parsed["kind"],
        title=parsed["title"],
        languages=tuple(parsed.get("language") or (None,)),
        description=parsed.get("description"),
        source_language=parsed.get("source_language"),
        source_url=parsed.get("source"),
        priority=parsed.get("priority") or Priority.NORMAL,
        due_at=parsed.get("due"),
    )
    return Row(line, job), []


def _rules(line: int, parsed: dict[str, Any], env: ParseEnv) -> Iterator[Problem]:
    """What ``task post`` refuses beyond a single value: a past due date, source = target."""
    due = parsed.get("due")
    if due is not None and due <= env.now:
        past = _("that due date is already past; give a later one")
        yield Problem(line, "due", Markup.format(past))
    source = parsed.get("source_language")
    if source is not None and source in (parsed.get("language") or ()):
        message = _("`{code}` is also a target language; translate from another one")
        yield Problem(line, "source_language", Markup.format(message, code=source))


def summary(rows: list[Row], posted: list[Posted] | None = None) -> Markup:
    """What the rows post (or posted, given what posting made), in one sentence."""
    tasks = [t for row in rows for t in row.job.tasks()]
    kinds: dict[str, int] = {}
    languages: dict[str, int] = {}
    for task in tasks:
        kinds[task.kind.value] = kinds.get(task.kind.value, 0) + 1
        code = task.language or ""
        languages[code] = languages.get(code, 0) + 1
    comma = Markup.trusted(", ")
    by_kind = comma.join(Markup.format("{kind} {n:,}", kind=kind, n=n)
                         for kind, n in sorted(kinds.items()))  # fmt: skip
    by_language = comma.join(
        Markup.format("{code} {n:,}", code=code or _("no language"), n=n)
        for code, n in sorted(languages.items())
    )
    ids = [i for made in posted or [] for i in made.task_ids]
    numbers = Markup()
    if ids:
        numbers = (Markup.format(" #{id}", id=ids[0]) if len(ids) == 1 else
                   Markup.format(" #{first}–#{last}", first=min(ids), last=max(ids)))  # fmt: skip
    values = {
        "rows": Markup.format(ngettext("{n:,} row", "{n:,} rows"), n=len(rows)),
        "tasks": Markup.format(ngettext("{n:,} task", "{n:,} tasks"), n=len(tasks)),
        "numbers": numbers, "kinds": by_kind, "languages": by_language,
    }  # fmt: skip
    # Translators: {rows} is "3 rows", {tasks} "5 tasks", {numbers} their numbers (#4–#8) or
    # nothing, {kinds} and {languages} counts such as "translation 4, design 1".
    text = (_("{rows} posted {tasks}{numbers} ({kinds}; by target language: {languages})")
            if posted is not None else
            _("{rows} would post {tasks} ({kinds}; by target language: {languages})"))  # fmt: skip
    body = Markup.format(text, **values)
    jobs = [made.job_id for made in posted or [] if made.job_id is not None]
    several = sum(1 for row in rows if row.job.grouped)
    if len(jobs) == 1:
        body += Markup.format(_("; 1 job of several languages (job {job})"), job=jobs[0])
    elif jobs:
        body += Markup.format(
            _("; {n:,} jobs of several languages (jobs {first}–{last})"),
            n=len(jobs),
            first=jobs[0],
            last=jobs[-1],
        )
    elif several:
        body += Markup.format(
            ngettext("; {n:,} job of several languages", "; {n:,} jobs of several languages"),
            n=several,
        )
    return body
