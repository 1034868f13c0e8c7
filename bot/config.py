"""Configuration: a TOML file, overridden by ``VOLUNTEER_BOT_<SECTION>__<KEY>`` variables.

The file is ``--config PATH``, else ``$VOLUNTEER_BOT_CONFIG``, else ``./config.toml`` if it
exists; with none, every default applies (the console on an embedded SQLite database).
Secrets are ``SecretStr`` and never printed.
"""

import os
import tomllib
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from bot.domain.vocab import TaskKind
from bot.logs import describe_error

ENV_PREFIX = "VOLUNTEER_BOT_"
DEFAULT_FILE = Path("config.toml")


class ConfigError(Exception):
    """A configuration that cannot be used; the message is one line per problem."""


def _duration(value: Any) -> Any:
    if isinstance(value, str) and value and value[0].isdigit():
        from bot.params import parse_duration

        try:
            return parse_duration(value)
        except Exception as exc:
            raise ValueError(f"{value!r} is not a duration like 90s, 15m, 6h or 7d") from exc
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone like Europe/Brussels") from None
    return value


def _language(value: str) -> str:
    from bot.domain.i18n import EU_LANGUAGES

    code = value.strip().lower()
    if code not in EU_LANGUAGES:
        raise ValueError(
            f"{value!r} is not one of the 24 EU language codes: {', '.join(EU_LANGUAGES)}"
        )
    return code


def _registered(value: date) -> date:
    from bot.domain.eci import thresholds_for

    thresholds_for(value)  # raises ValueError naming the supported dates
    return value


def _cron(value: str) -> str:
    from bot.scheduler import parse_cron

    parse_cron(value)  # raises ValueError saying which field is wrong
    return value


def _target(value: str) -> str:
    platform, colon, address = value.partition(":")
    if value == "console" or (platform.isalpha() and platform.islower() and colon and address):
        return value
    raise ValueError(f"{value!r} is not a target like console, matrix:!room:server or discord:123")


def _listen(value: str) -> str:
    from bot.web.addresses import parse_listen

    parse_listen(value)  # raises ValueError saying what a listen address looks like
    return value


def _public_url(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an address like https://bot.example.org")
    return value.rstrip("/")


Span = Annotated[timedelta, BeforeValidator(_duration)]
Zone = Annotated[str, AfterValidator(_zone)]
Language = Annotated[str, AfterValidator(_language)]
Positive = Annotated[int, Field(ge=1)]


class Section(BaseModel):
    """A config table; unknown keys are reported by :func:`unknown_keys`."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class BotSection(Section):
    """General behaviour."""

    command_prefix: str = "!"
    cogs: list[str] | None = None
    # Several processes on one database share the work: each duty (Matrix sync, Discord
    # gateway, scheduler, poller, retention) is held by one of them for this long at a time,
    # renewed every tenth of it; a standby takes over within about this long of a crash.
    lease_ttl: Annotated[Span, Field(ge=timedelta(seconds=1))] = timedelta(seconds=10)
    # Where commands are answered besides the configured rooms and servers: "direct" chats
    # with the bot, "everywhere" (any room or server the bot is in), or "nowhere".
    answer_elsewhere: Literal["nowhere", "direct", "everywhere"] = "direct"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The language of everything the bot says where nothing closer decides (see README,
    # "Languages"): a person's own choice, their Discord client's, the room's, then this.
    language: Language = "en"
    # A room's or server's language, by target: "matrix:!room:server", "discord:<channel id>"
    # or "discord:<server id>", "console". Posts to a room go in its language.
    room_languages: dict[Annotated[str, AfterValidator(_target)], Language] = {}


class DatabaseUrl(str):
    """A storage URL that shows its password as ``***`` when printed as a repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        scheme, separator, rest = self.partition("://")
        userinfo, at, host = rest.rpartition("@")
        if not (separator and at and ":" in userinfo):
            return super().__repr__()
        user = userinfo.partition(":")[0]
        return repr(f"{scheme}://{user}:***@{host}")


class StorageSection(Section):
    """Where state lives."""

    url: Annotated[str, AfterValidator(DatabaseUrl)] = DatabaseUrl("sqlite:///volunteer-bot.db")
    busy_timeout_ms: int = 5000


class ConsoleSection(Section):
    """The terminal adapter."""

    coordinators: list[str] = []


class CampaignSection(Section):
    """The initiative itself."""

    name: str = "Reclaim Your Face"
    goal: Positive = 1_000_000
    countries_needed: Annotated[int, Field(ge=1, le=27)] = 7
    registered: Annotated[date, AfterValidator(_registered)] = date(2025, 1, 15)
    collection_ends: date | None = None
    timezone: Zone = "Europe/Brussels"


class TasksSection(Section):
    """The task queue."""

    max_open_claims: Positive = 3
    claim_ttl: Span = timedelta(days=7)
    page_size: int = 10
    # Kinds whose done work waits for a second volunteer's review before it is finished.
    review_kinds: list[TaskKind] = [TaskKind.TRANSLATION, TaskKind.VIDEO_EDITING]


class RemindersSection(Section):
    """Scheduled reminders."""

    late_grace: Span = timedelta(hours=6)


class PrivacySection(Section):
    """Personal data handling."""

    retention_days: int = Field(default=365, ge=1)


class MatrixSection(Section):
    """The Matrix adapter."""

    enabled: bool = False
    homeserver: str = ""
    user_id: str = ""
    access_token: SecretStr | None = None
    password: SecretStr | None = None
    device_id: str | None = None
    rooms: list[str] = []
    coordinators: list[str] = []
    coordinator_power_level: Annotated[int, Field(ge=1)] = 50
    invite_allowlist: list[str] = []
    command_prefix: str | None = None
    store_path: str = "matrix-store"
    # Whose devices get the keys of the bot's encrypted messages: "tofu" (trust on first use:
    # every device of every member) or "cross-signed" (only devices their owner signed).
    trust: Literal["tofu", "cross-signed"] = "tofu"
    # How long a message that arrived before its decryption key is held for the key.
    late_key_wait: Span = timedelta(minutes=5)
    # How many rooms are served at the same moment; each room keeps its own order.
    room_concurrency: Positive = 8


class DiscordSection(Section):
    """The Discord adapter."""

    enabled: bool = False
    token: SecretStr | None = None
    application_id: int | None = None
    guild_ids: list[int] = []
    coordinators: list[int] = []
    coordinator_role_ids: list[int] = []
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"


class SignatureSourceSection(Section):
    """Where signature counts come from besides coordinators typing them."""

    kind: Literal["manual", "json", "eci_register", "eci_cocs"] = "manual"
    url: str = ""
    poll_interval: Span = timedelta(minutes=15)
    total_path: str = "total"
    countries_path: str = ""


class SignaturesSection(Section):
    """Signature counting."""

    source: SignatureSourceSection = SignatureSourceSection()


class MilestonesSection(Section):
    """What gets announced."""

    totals: list[int] = [10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 750_000, 1_000_000]


class AnnounceSection(Section):
    """Where announcements go."""

    # None (unset): the configured Matrix rooms, or the console when no platform is enabled.
    targets: list[Annotated[str, AfterValidator(_target)]] | None = None
    digest_cron: Annotated[str, AfterValidator(_cron)] = "0 9 * * 1"


class WebSection(Section):
    """The optional web server: public progress, coordinators' dashboard, health, metrics."""

    enabled: bool = False
    # host:port to listen on, e.g. "127.0.0.1:8080" or "[::1]:8080"; nothing else listens.
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:8080"
    # The address people reach it at (behind a proxy): sign-in links start with it, and an
    # https address makes the session cookie Secure.
    public_url: Annotated[str, AfterValidator(_public_url)] = ""
    # Signs sign-in links and session cookies; generated and kept in the database if unset.
    secret: SecretStr | None = None
    link_ttl: Span = timedelta(minutes=10)
    session_ttl: Span = timedelta(hours=8)
    # Sessions of people whose rights come from their platform standing, not from config.
    derived_session_ttl: Span = timedelta(minutes=30)
    # Per client address on every page: a token bucket of `burst` refilled at `rate` a second.
    rate: Annotated[float, Field(gt=0)] = 10.0
    burst: Positive = 40
    # All public pages together, so the bot's own answers keep their speed under a rush.
    max_rate: Annotated[float, Field(gt=0)] = 100.0
    # Proxies whose X-Forwarded-For names the client (exact addresses).
    trusted_proxies: list[str] = []
    # Who may frame /embed: CSP frame-ancestors sources, e.g. ["https://campaign.example"].
    embed_origins: list[str] = ["*"]
    # How long the public figures are reused before the database is asked again.
    cache_ttl: Span = timedelta(seconds=5)


class Settings(BaseSettings):
    """Every setting, with its default."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", frozen=True
    )

    bot: BotSection = BotSection()
    storage: StorageSection = StorageSection()
    console: ConsoleSection = ConsoleSection()
    campaign: CampaignSection = CampaignSection()
    tasks: TasksSection = TasksSection()
    reminders: RemindersSection = RemindersSection()
    privacy: PrivacySection = PrivacySection()
    matrix: MatrixSection = MatrixSection()
    discord: DiscordSection = DiscordSection()
    signatures: SignaturesSection = SignaturesSection()
    milestones: MilestonesSection = MilestonesSection()
    announce: AnnounceSection = AnnounceSection()
    web: WebSection = WebSection()

    @property
    def announce_targets(self) -> list[str]:
        """Where announcements go: ``announce.targets``, else the rooms the bot serves.

        Unset, they are the configured Matrix rooms when Matrix is enabled, and the console
        when no platform is; Discord has no channels configured, so it needs them named.
        """
        if self.announce.targets is not None:
            return list(self.announce.targets)
        if self.matrix.enabled:
            return [f"matrix:{room}" for room in self.matrix.rooms]
        return [] if self.discord.enabled else ["console"]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment overrides the file, which is passed in as init values."""
        return (env_settings, init_settings)


def find_config_file(explicit: str | None) -> Path | None:
    """The file to read, by precedence; None when there is none."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get(ENV_PREFIX + "CONFIG"):
        return Path(env)
    return DEFAULT_FILE if DEFAULT_FILE.exists() else None


def load_settings(path: Path | None) -> tuple[Settings, list[str]]:
    """Read and validate; returns the settings and warnings about unknown keys.

    Raises ConfigError with one line per problem, naming the key path.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"config file {path} cannot be read: {describe_error(exc)}"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    warnings = [f"unknown config key '{key}' is ignored" for key in unknown_keys(Settings, data)]
    warnings += [
        f"unknown environment variable {name} is ignored"
        for name in os.environ
        if name.startswith(ENV_PREFIX) and name != ENV_PREFIX + "CONFIG" and not _env_known(name)
    ]
    try:
        return Settings(**data), warnings
    except PydanticValidationError as exc:
        raise ConfigError("\n".join(_describe(error) for error in exc.errors())) from None
    except SettingsError as exc:
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        raise ConfigError(
            f"config error: {field}: a {ENV_PREFIX}{field.upper()}__* variable cannot be read; "
            'write lists and tables as JSON, e.g. [1, 2] or ["a", "b"]'
        ) from None


def unknown_keys(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths in ``data`` that ``model`` has no field for."""
    found: list[str] = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        path = f"{prefix}{key}"
        if field is None:
            found.append(path)
            continue
        annotation = field.annotation
        if (
            isinstance(value, dict)
            and isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
        ):
            found.extend(unknown_keys(annotation, value, path + "."))
    return found


def _env_known(name: str) -> bool:
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    model: type[BaseModel] = Settings
    for part in parts:
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return True


def _describe(error: Any) -> str:
    path = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"])
    # Never echo secret values: pydantic's input is left out on purpose.
    env = ENV_PREFIX + "__".join(str(part).upper() for part in error["loc"])
    return f"config error: {path}: {message} (in the config file or {env})"
