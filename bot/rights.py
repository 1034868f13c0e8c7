"""Who is a coordinator, and where the bot answers: decided here, for every platform.

Coordinator rights belong to the campaign, not to the room a command happens to come from.
A person is a coordinator when the configuration names them, or when they hold standing in
one of the campaign's own places:

- Matrix: power level ≥ ``matrix.coordinator_power_level`` in a room listed in
  ``matrix.rooms`` (from room version 12, a creator of such a room outranks every level);
- Discord: a role listed in ``discord.coordinator_role_ids`` (a role belongs to one server),
  or Manage Server in a server listed in ``discord.guild_ids``.

Standing anywhere else — a direct chat, a room someone invited the bot to, a server that
added the bot — counts for nothing. Adapters only report what they observe (:class:`Standing`)
and what kind of place a command came from; this module decides.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from bot.domain import UserRef

if TYPE_CHECKING:
    from bot.config import Settings

DISCORD_GUILD = "discord-guild:{id}"


class Reach(StrEnum):
    """Where, besides the campaign's own places, the bot answers commands."""

    NOWHERE = "nowhere"
    DIRECT = "direct"
    EVERYWHERE = "everywhere"


class PlaceKind(StrEnum):
    """What a place is to the campaign."""

    CAMPAIGN = "campaign"  # a configured room or server, or the console
    DIRECT = "direct"  # a direct chat between the bot and one person
    OTHER = "other"  # any other room or server


@dataclass(frozen=True, slots=True)
class Standing:
    """A person's standing in one place, as its platform reports it.

    ``place`` is ``matrix:!room:server`` for a Matrix room or ``discord-guild:ID`` for a
    Discord server.
    """

    place: str
    level: int = 0
    creator: bool = False
    manages: bool = False
    roles: frozenset[int] = frozenset()


@dataclass
class Rights:
    """The campaign's rule for coordinator rights and for the places it answers in."""

    named: dict[str, frozenset[str]]
    campaign_places: set[str] = field(default_factory=set)
    power_level: int = 50
    coordinator_roles: frozenset[int] = frozenset()
    reach: Reach = Reach.DIRECT

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Rights":
        """The rule as the configuration states it (Matrix aliases are added once resolved)."""
        matrix, discord = settings.matrix, settings.discord
        places = {f"matrix:{room}" for room in matrix.rooms if room.startswith("!")}
        places |= {DISCORD_GUILD.format(id=gid) for gid in discord.guild_ids}
        return cls(
            named={
                "console": frozenset(settings.console.coordinators),
                "matrix": frozenset(matrix.coordinators),
                "discord": frozenset(str(uid) for uid in discord.coordinators),
            },
            campaign_places=places,
            power_level=matrix.coordinator_power_level,
            coordinator_roles=frozenset(discord.coordinator_role_ids),
            reach=Reach(settings.bot.answer_elsewhere),
        )

    def add_campaign_place(self, place: str) -> None:
        """Count a place as the campaign's (a configured room alias, once resolved)."""
        self.campaign_places.add(place)

    def is_coordinator(self, user: UserRef, standings: Iterable[Standing] = ()) -> bool:
        """Whether ``user`` is a coordinator, given their standing in the places reported."""
        if user.external_id in self.named.get(user.platform, frozenset()):
            return True
        for standing in standings:
            if standing.roles & self.coordinator_roles:
                return True
            if standing.place not in self.campaign_places:
                continue
            if standing.creator or standing.manages or standing.level >= self.power_level:
                return True
        return False

    def kind_of(self, place: str, *, direct: bool) -> PlaceKind:
        """What ``place`` is to the campaign; ``direct``: only the bot and one person are in it."""
        if place in self.campaign_places:
            return PlaceKind.CAMPAIGN
        return PlaceKind.DIRECT if direct else PlaceKind.OTHER

    def answers_in(self, kind: PlaceKind) -> bool:
        """Whether commands from a place of this kind are served."""
        if kind is PlaceKind.CAMPAIGN:
            return True
        if kind is PlaceKind.DIRECT:
            return self.reach is not Reach.NOWHERE
        return self.reach is Reach.EVERYWHERE
