"""The message catalogs: current with the code, complete, and each translation well-formed."""

import re

import pytest
from babel.messages.plurals import get_plural

from bot.catalogs import COMPLETE, ROOT, SOURCES, extract, load, problems, sync
from bot.domain.i18n import (
    COMMAND,
    EU_LANGUAGES,
    NAME,
    SOURCE_LANGUAGE,
    ngettext,
    translation,
)
from bot.readers import DISCORD_LOCALES

TRANSLATED = [code for code in EU_LANGUAGES if code != SOURCE_LANGUAGE]
# Discord's limit on a command's names, descriptions and choices together, per locale.
MAX_COMMAND_CHARS = 4000


def messages(language: str):
    """(context, msgid, msgid_plural or None, translations) of each message in a catalog."""
    for message in load(language):
        if not message.id:
            continue
        if isinstance(message.id, (list, tuple)):
            yield message.context, message.id[0], message.id[1], tuple(message.string)
        else:
            yield message.context, message.id, None, (message.string,)


def test_the_template_and_every_catalog_are_current_with_the_code():
    stale = sync(check=True)
    assert not stale, f"run `python dev.py catalog`: out of date: {[p.name for p in stale]}"


def test_every_eu_language_but_the_source_has_a_catalog_and_all_are_complete():
    assert set(COMPLETE) == set(TRANSLATED), "every language is translated in full"


@pytest.mark.parametrize("language", TRANSLATED)
def test_a_complete_catalog_translates_every_message(language):
    template = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in extract() if m.id}
    missing = [
        msgid for context, msgid, _plural, strings in messages(language)
        if (context, msgid) in template and not all(strings)
    ]  # fmt: skip
    # A fuzzy translation is one gettext will not use: the bot answers in English there.
    fuzzy = [m.id for m in load(language) if m.id and m.fuzzy]
    if language in COMPLETE:
        assert not missing, f"{language}: {len(missing)} untranslated, e.g. {missing[:3]}"
        assert not fuzzy, f"{language}: {len(fuzzy)} marked fuzzy, e.g. {fuzzy[:3]}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders_and_the_markup(language):
    num_plurals = load(language).num_plurals
    found = [
        problem
        for context, msgid, plural, strings in messages(language)
        for problem in problems(context, msgid, plural, strings, num_plurals)
    ]
    assert not found, f"{language}:\n" + "\n".join(found)


@pytest.mark.parametrize("language", TRANSLATED)
def test_plural_forms_are_as_many_as_the_language_has(language):
    catalog = load(language)
    expected = get_plural(language).num_plurals
    assert catalog.num_plurals == expected, f"{language}: header says {catalog.num_plurals}"
    wrong = [
        msgid for _context, msgid, plural, strings in messages(language)
        if plural is not None and len(strings) != expected
    ]  # fmt: skip
    assert not wrong, f"{language}: {wrong[:3]} do not have {expected} forms"


BROKEN = [
    (None, "Task {id} is **yours**.", None, ("Zadanie jest **twoje**.",), "instead of"),
    (None, "Task {id} is **yours**.", None, ("Zadanie {id} jest **twoje.",), "**"),
    (None, "Run `{command}`.", None, ("Uruchom `{command}.",), "`"),
    (None, "{n:,} signed", None, ("{n} podpisów",), "instead of"),
    (None, "{n} task", "{n} tasks", ("{n} zadanie", "{n} zadania"), "plural forms"),
    (None, "{n} task", "{n} tasks", ("{n} zadanie", "{n} zadania", "{count} zadań"), "form 2"),
    (NAME, "claim", None, ("Przyjmij Zadanie",), "not a valid Discord name"),
    (COMMAND, "Take a task.", None, ("x" * 101,), "Discord allows"),
    (None, "Hi {name}", None, ("Cześć {name",), "not a template"),
]


@pytest.mark.parametrize(("context", "msgid", "plural", "strings", "says"), BROKEN)
def test_a_broken_translation_is_caught(context, msgid, plural, strings, says):
    found = problems(context, msgid, plural, strings, 3)
    assert found and says in found[0], found


def test_a_sound_translation_passes():
    assert not problems(None, "{n} task", "{n} tasks", ("jedno zadanie", "{n} zadania",
                                                        "{n} zadań"), 3)  # fmt: skip


def _slash_payloads(language_locale: str):
    from discord.app_commands import TranslationContextLocation as Where

    from bot.adapters.discord_names import translated
    from bot.catalogs import cog_classes

    def shown(text: str, where: Where) -> str:
        return translated(text, language_locale, where) or text

    for cog in cog_classes():
        for spec in cog.specs:
            parts = [shown(spec.name, Where.command_name),
                     shown(spec.description, Where.command_description)]  # fmt: skip
            options = []
            for arg in spec.args:
                name = shown(arg.name, Where.parameter_name)
                options.append(name)
                parts += [name, shown(arg.description, Where.parameter_description)]
                parts += [shown(c, Where.choice_name) for c in arg.choices]
                parts += arg.choices
            yield spec, parts, options


@pytest.mark.parametrize("locale", sorted(DISCORD_LOCALES))
def test_every_slash_command_fits_discords_limits_in_every_locale(locale):
    from bot.catalogs import cog_classes

    problems = []
    siblings: dict[str | None, list[str]] = {}
    for spec, parts, options in _slash_payloads(locale):
        size = sum(len(p) for p in parts)
        if size > MAX_COMMAND_CHARS:
            problems.append(f"{spec.qualified_name}: {size} characters")
        if len(set(options)) != len(options):
            problems.append(f"{spec.qualified_name}: two options share a name {options}")
        siblings.setdefault(spec.group, []).append(parts[0])
    for group, names in siblings.items():
        if len(set(names)) != len(names):
            problems.append(f"group {group}: two commands share a name {sorted(names)}")
    groups = [c.group for c in cog_classes() if c.group]
    assert groups and not problems, f"{locale}:\n" + "\n".join(problems)


def test_discord_has_no_locale_for_six_eu_languages_and_portuguese_only_as_brazilian():
    covered = set(DISCORD_LOCALES.values())
    assert set(EU_LANGUAGES) - covered == {"et", "ga", "lv", "mt", "sk", "sl"}
    assert [k for k, v in DISCORD_LOCALES.items() if v == "pt"] == ["pt-BR"]


def test_no_message_is_split_across_concatenated_pieces():
    """A message ends a sentence or is a whole line: no fragments glued with + or join."""
    bad = [m.id for m in extract() if isinstance(m.id, str) and re.match(r"^\s|.*[^\s]\s$", m.id)]
    assert not bad, f"fragments: {bad[:5]}"


def test_every_note_for_translators_reaches_the_template():
    """Babel keeps a ``# Translators:`` comment only on the line just above the message."""
    kept = " ".join(" ".join(m.auto_comments) for m in extract())
    kept = " ".join(kept.split())
    lost = []
    for path in sorted(p for directory in SOURCES for p in (ROOT / directory).rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            note = re.search(r"#\s*Translators:\s*(.+)", line)
            if note and " ".join(note.group(1).split()) not in kept:
                lost.append(f"{path.relative_to(ROOT)}:{number}")
    assert not lost, f"notes Babel drops (move each just above its message): {lost}"


# "{n:,} task" for 1, 2, 5, 10, 21 and 1,000,000 tasks, as each language says it: the forms
# must not only be as many as the language has, but in the order its plural rule numbers them.
TASKS = {
    "bg": "задача задачи задачи задачи задачи задачи",
    "cs": "úkol úkoly úkolů úkolů úkolů úkolů",
    "da": "opgave opgaver opgaver opgaver opgaver opgaver",
    "de": "Aufgabe Aufgaben Aufgaben Aufgaben Aufgaben Aufgaben",
    "el": "εργασία εργασίες εργασίες εργασίες εργασίες εργασίες",
    "es": "tarea tareas tareas tareas tareas de_tareas",
    "et": "ülesanne ülesannet ülesannet ülesannet ülesannet ülesannet",
    "fi": "tehtävä tehtävää tehtävää tehtävää tehtävää tehtävää",
    "fr": "tâche tâches tâches tâches tâches de_tâches",
    "ga": "tasc thasc thasc dtasc tasc tasc",
    "hr": "zadatak zadatka zadataka zadataka zadatak zadataka",
    "hu": "feladat feladat feladat feladat feladat feladat",
    "it": "attività attività attività attività attività di_attività",
    "lt": "užduotis užduotys užduotys užduočių užduotis užduočių",
    "lv": "uzdevums uzdevumi uzdevumi uzdevumu uzdevums uzdevumu",
    "mt": "kompitu kompiti kompiti kompiti kompitu kompitu",
    "nl": "taak taken taken taken taken taken",
    "pl": "zadanie zadania zadań zadań zadań zadań",
    "pt": "tarefa tarefas tarefas tarefas tarefas de_tarefas",
    "ro": "sarcină sarcini sarcini sarcini de_sarcini de_sarcini",
    "sk": "úloha úlohy úloh úloh úloh úloh",
    "sl": "naloga nalogi nalog nalog nalog nalog",
    "sv": "uppgift uppgifter uppgifter uppgifter uppgifter uppgifter",
}


@pytest.mark.parametrize("language", TRANSLATED)
def test_plural_forms_are_in_the_order_of_the_languages_rule(language):
    task = ngettext("{n:,} task", "{n:,} tasks")
    said = [translation(language).text(task, n).removeprefix("{n:,} ").replace(" ", "_")
            for n in (1, 2, 5, 10, 21, 1_000_000)]  # fmt: skip
    assert said == TASKS[language].split()
