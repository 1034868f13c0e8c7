"""The campaign's fixed vocabulary: roles, task kinds, priorities, languages, countries."""

from enum import StrEnum

from bot.domain.i18n import Msg, pgettext


class Role(StrEnum):
    """What a volunteer does."""

    ORGANISER = "organiser"
    INVESTIGATOR = "investigator"
    PROGRAMMER = "programmer"
    TRANSLATOR = "translator"
    NETWORKER = "networker"
    VIDEO_EDITOR = "video-editor"


class TaskKind(StrEnum):
    """What kind of job a task is."""

    TRANSLATION = "translation"
    VIDEO_EDITING = "video-editing"
    INVESTIGATION = "investigation"
    PROGRAMMING = "programming"
    ORGANISING = "organising"
    NETWORKING = "networking"
    OTHER = "other"


class Priority(StrEnum):
    """How urgent a task is; the queue sorts by rank, highest first."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """3 for urgent down to 0 for low."""
        return list(Priority).index(self)


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    OPEN = "open"
    CLAIMED = "claimed"
    IN_REVIEW = "in_review"  # done by its claimer, waiting for a second speaker
    DONE = "done"
    CANCELLED = "cancelled"


# A task's status as a word in a sentence ("Task #7 is cancelled") or a chart's legend.
STATUS_WORDS: dict[TaskStatus, Msg] = {
    TaskStatus.OPEN: pgettext("status", "open"),
    TaskStatus.CLAIMED: pgettext("status", "claimed"),
    TaskStatus.IN_REVIEW: pgettext("status", "in review"),
    TaskStatus.DONE: pgettext("status", "done"),
    TaskStatus.CANCELLED: pgettext("status", "cancelled"),
}


# The role a kind needs; None means any registered volunteer may take it.
KIND_ROLE: dict[TaskKind, Role | None] = {
    TaskKind.TRANSLATION: Role.TRANSLATOR,
    TaskKind.VIDEO_EDITING: Role.VIDEO_EDITOR,
    TaskKind.INVESTIGATION: Role.INVESTIGATOR,
    TaskKind.PROGRAMMING: Role.PROGRAMMER,
    TaskKind.ORGANISING: Role.ORGANISER,
    TaskKind.NETWORKING: Role.NETWORKER,
    TaskKind.OTHER: None,
}

# The 24 official EU languages, ISO 639-1 code -> English name.
LANGUAGES: dict[str, str] = {
    "bg": "Bulgarian", "hr": "Croatian", "cs": "Czech", "da": "Danish", "nl": "Dutch",
    "en": "English", "et": "Estonian", "fi": "Finnish", "fr": "French", "de": "German",
    "el": "Greek", "hu": "Hungarian", "ga": "Irish", "it": "Italian", "lv": "Latvian",
    "lt": "Lithuanian", "mt": "Maltese", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian",
    "sk": "Slovak", "sl": "Slovenian", "es": "Spanish", "sv": "Swedish",
}  # fmt: skip

# The 27 member states by the EU's own codes (EL for Greece), code -> English name.
COUNTRIES: dict[str, str] = {
    "BE": "Belgium", "BG": "Bulgaria", "CZ": "Czechia", "DK": "Denmark", "DE": "Germany",
    "EE": "Estonia", "IE": "Ireland", "EL": "Greece", "ES": "Spain", "FR": "France",
    "HR": "Croatia", "IT": "Italy", "CY": "Cyprus", "LV": "Latvia", "LT": "Lithuania",
    "LU": "Luxembourg", "HU": "Hungary", "MT": "Malta", "NL": "Netherlands", "AT": "Austria",
    "PL": "Poland", "PT": "Portugal", "RO": "Romania", "SI": "Slovenia", "SK": "Slovakia",
    "FI": "Finland", "SE": "Sweden",
}  # fmt: skip

# ISO 3166 codes that differ from the EU's own (the Commission's API says GR for Greece).
COUNTRY_ALIASES: dict[str, str] = {"GR": "EL"}
