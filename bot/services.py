"""What cogs receive in ``__init__``: repositories, the clock, settings, the registry."""

from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings
from bot.core import Registry
from bot.outbox import Outbox
from bot.rights import Rights
from bot.scheduler import Scheduler
from storage.audit import AuditRepo
from storage.db import Database
from storage.outbox import OutboxRepo
from storage.reminders import ReminderRepo
from storage.signatures import SignatureRepo
from storage.state import StateRepo
from storage.tasks import TaskRepo
from storage.volunteers import VolunteerRepo


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
    scheduler: Scheduler
    reminders: ReminderRepo
    signatures: SignatureRepo
    tasks: TaskRepo

    @classmethod
    def build(cls, settings: Settings, clock: Clock, db: Database) -> "Services":
        """Create every repository on one database."""
        outbox_repo = OutboxRepo(db)
        return cls(
            settings=settings,
            clock=clock,
            db=db,
            registry=Registry(),
            rights=Rights.from_settings(settings),
            audit=AuditRepo(db),
            volunteers=VolunteerRepo(db),
            outbox_repo=outbox_repo,
            outbox=Outbox(outbox_repo, clock),
            state=StateRepo(db),
            scheduler=Scheduler(clock),
            reminders=ReminderRepo(db),
            signatures=SignatureRepo(db),
            tasks=TaskRepo(db),
        )
