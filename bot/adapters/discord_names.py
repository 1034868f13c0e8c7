"""Slash commands in the reader's language: discord.py's Translator, fed from our catalogs.

Names, descriptions and choice names of every command are looked up in the same catalogs as
the bot's replies (contexts ``name``, ``command`` and ``choice``). Discord has a locale for 18
of the 24 EU languages; a translation that breaks Discord's rules (a name that is not 1-32
lowercase letters, digits, ``-`` or ``_``; a description over 100 characters) is left out, so
Discord shows the English one instead of refusing the whole sync.
"""

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot.domain.i18n import (
    CHOICE,
    COMMAND,
    MAX_DESCRIPTION,
    NAME,
    SOURCE_LANGUAGE,
    translation,
    valid_name,
)
from bot.readers import DISCORD_LOCALES

_CONTEXT = {
    Where.command_name: NAME,
    Where.group_name: NAME,
    Where.parameter_name: NAME,
    Where.command_description: COMMAND,
    Where.group_description: COMMAND,
    Where.parameter_description: COMMAND,
    Where.choice_name: CHOICE,
}
_NAMES = frozenset({Where.command_name, Where.group_name, Where.parameter_name})


class CatalogTranslator(app_commands.Translator):
    """Answers discord.py's questions "what is this string in that locale" from the catalogs."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        """The string in ``locale``, or None (Discord then shows the English one)."""
        return translated(str(string.message), locale.value, context.location)


def translated(text: str, locale: str, where: Where) -> str | None:
    """``text`` (a name, description or choice) for one Discord locale, if it is valid there."""
    language = DISCORD_LOCALES.get(locale)
    context = _CONTEXT.get(where)
    if language is None or language == SOURCE_LANGUAGE or context is None:
        return None
    found = translation(language).messages.get((context, text))
    if not isinstance(found, str) or not found or found == text:
        return None
    if where in _NAMES:
        return found if valid_name(found) else None
    return found if len(found) <= MAX_DESCRIPTION else None
