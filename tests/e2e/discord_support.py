"""Running the real bot (App + DiscordAdapter) against the wire-level fake, restartably."""

from pathlib import Path
from typing import Any

from bot.adapters.discord_adapter import DiscordAdapter
from bot.app import App
from bot.clock import ManualClock
from tests.discord_fake import FakeDiscord
from tests.harness import START, make_app

COORDINATOR_ROLE = 4300


class BotRunner:
    """One bot on one database file; ``restart()`` is a new process's worth of objects."""

    def __init__(self, fake: FakeDiscord, tmp_path: Path, **discord: Any) -> None:
        self.fake = fake
        self.tmp_path = tmp_path
        self.clock = ManualClock(START)
        self.discord = discord
        self.app: App | None = None
        self.adapter: DiscordAdapter | None = None

    def settings(self, **sections: Any) -> dict[str, Any]:
        discord = {
            "enabled": True,
            "token": self.fake.token,
            "guild_ids": [self.fake.guild_id],
            "coordinator_role_ids": [COORDINATOR_ROLE],
            "api_base": self.fake.api_base,
            "gateway_url": self.fake.gateway_url,
            **self.discord,
        }
        return {"discord": discord, **sections}

    async def start(self, **sections: Any) -> DiscordAdapter:
        before = len(self.fake.identifies)
        self.app = make_app(self.tmp_path, self.clock, **self.settings(**sections))
        self.adapter = DiscordAdapter(self.app)
        await self.app.start([self.adapter])
        await self.fake.wait_connected(after=before)
        return self.adapter

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None
            self.adapter = None

    async def restart(self, **sections: Any) -> DiscordAdapter:
        await self.stop()
        return await self.start(**sections)
