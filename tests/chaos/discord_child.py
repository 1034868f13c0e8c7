"""The bot's command line (``python -m bot``) for the Discord chaos test, optionally broken.

``CHAOS_DISCORD_BROKEN=fresh-nonce`` (read here only, never by the bot) gives every attempt
at an outbox post a nonce of its own, so a post whose answer was lost goes out again when the
outbox retries it; the chaos test must notice.
"""

import os
import secrets
import sys

from bot import __main__ as cli

BROKEN = "CHAOS_DISCORD_BROKEN"

if __name__ == "__main__":
    if os.environ.get(BROKEN) == "fresh-nonce":
        from bot.adapters import discord_adapter

        discord_adapter._nonce = lambda key, where, part: secrets.token_hex(12)
    sys.exit(cli.main())
