"""``python -m bot``, or with ``CHAOS_BROKEN`` set, the bot with a deliberately broken adapter.

Used only by tests/chaos/test_matrix_chaos.py to show that its harness catches a bot that marks
an event's answer done before it is sent (the answer is then lost when the send fails).
"""

import contextlib
import os
import sys

from bot.__main__ import main

BROKEN = os.environ.get("CHAOS_BROKEN")

if BROKEN == "answered-before-sent":
    from bot.adapters import matrix_adapter

    async def send_once(self: matrix_adapter.MatrixAdapter, key: str, kept: str) -> bool:
        """Mark the answer sent, then try to send it once; a failure loses it."""
        await self.app.leases.repo.answered(key, self.app.clock.now())
        with contextlib.suppress(Exception):
            await original(self, key, kept)
        self._unsent.pop(key, None)
        return True

    original = matrix_adapter.MatrixAdapter._send_kept
    matrix_adapter.MatrixAdapter._send_kept = send_once  # type: ignore[method-assign]
    matrix_adapter.MatrixAdapter._resend_later = (  # type: ignore[method-assign]
        lambda self, key, kept, why: False
    )
elif BROKEN:
    raise SystemExit(f"unknown CHAOS_BROKEN={BROKEN!r}")

if __name__ == "__main__":
    sys.exit(main())
