"""What cogs receive in ``__init__``: repositories, the clock, settings, the registry."""

from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings
from bot.core import Registry
from bot.metrics import Metrics
from bot.outbox import Outbox
from bot.readers import CommandSyntax, Readers
from bot.rights import Rights
from bot.scheduler import Scheduler
from bot.uploads import Uploads
from bot.web.tokens import SignIn
from storage.audit import AuditRepo
from storage.dashboard import DashboardRepo
from storage.db import Database
from storage.direct_chats import DirectChatRepo
from storage.outbox import OutboxRepo
from storage.preferences import PreferenceRepo
from storage.reminders import ReminderRepo
from storage.signatures import SignatureRepo
from storage.state import StateRepo
from storage.tasks import TaskRepo
from storage.uploads import UploadRepo
from storage.volunteers import VolunteerRepo
from storage.web import UsedTokenRepo

# A post being delivered is held for this many duty leases (bot.lease_ttl): a crashed
# process's posts go out again about that long after it died.
OUTBOX_LEASES = 3


@dataclass
class Services:
    """Dependencies handed to every cog; a cog keeps only what it uses."""

    settings: Settings
    clock: Clock
    db: Database
    registry: Registry
    rights: Rights
    audit: AuditRepo
    volunteers: VolunteerRepo
    outbox_repo: OutboxRepo
    outbox: Outbox
    state: StateRepo
    direct_chats: DirectChatRepo
    uploads: Uploads
    scheduler: Scheduler
    reminders: ReminderRepo
    signatures: SignatureRepo
    tasks: TaskRepo
    metrics: Metrics
    dashboard: DashboardRepo
    signin: SignIn
    preferences: PreferenceRepo
    readers: Readers

    @classmethod
    def build(cls, settings: Settings, clock: Clock, db: Database) -> "Services":
        """Create every repository on one database."""
        outbox_repo = OutboxRepo(db)
        rights = Rights.from_settings(settings)
        state = StateRepo(db)
        registry = Registry()
        preferences = PreferenceRepo(db)
        matrix_prefix = settings.matrix.command_prefix or settings.bot.command_prefix
        syntaxes = {
            "console": CommandSyntax(registry, "console"),
            "matrix": CommandSyntax(registry, "matrix", matrix_prefix),
            "discord": CommandSyntax(registry, "discord"),
        }
        readers = Readers(settings, preferences, syntaxes)
        outbox = Outbox(outbox_repo, clock, lease=OUTBOX_LEASES * settings.bot.lease_ttl)
        outbox.reader_of = readers.for_post
        return cls(
            settings=settings,
            clock=clock,
            db=db,
            registry=registry,
            rights=rights,
            audit=AuditRepo(db),
            volunteers=VolunteerRepo(db),
            outbox_repo=outbox_repo,
            outbox=outbox,
            state=state,
            direct_chats=DirectChatRepo(db),
            uploads=Uploads(UploadRepo(db)),
            scheduler=Scheduler(clock),
            reminders=ReminderRepo(db),
            signatures=SignatureRepo(db),
            tasks=TaskRepo(db),
            metrics=Metrics(),
            dashboard=DashboardRepo(db),
            signin=SignIn(settings.web, rights, state, UsedTokenRepo(db), clock),
            preferences=preferences,
            readers=readers,
        )
