"""The terminal: the embedded default when no platform is configured.

On a TTY it shows a prompt; otherwise it reads one command per line and prints each reply,
so sessions can be scripted. ``:as NAME`` switches the acting user. Posts addressed to the
console (announcements, reminders, notices) print when they fire.
"""

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.adapters import Status
from bot.context import Actor, Attachment, Ctx, Place, Reply
from bot.domain import Markup, UserRef
from bot.domain.i18n import ENGLISH, Reader
from bot.outbox import Delivery
from storage.db import DatabaseUnavailable

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

PLATFORM = "console"
TEXT_TYPES = frozenset({"application/json"})
PREFIXES = ("!", "/", "")
NOT_UTF8 = (
    "That line is not valid UTF-8 text, so I skipped it; set the terminal to UTF-8 and type "
    "it again."
)
HELP = (
    "Console commands: `:as NAME` acts as another person, `:quit` leaves. "
    "Everything else is a bot command; try `help`."
)


class ConsoleAdapter:
    """Reads commands from a stream and prints replies and posts to another."""

    platform = PLATFORM

    def __init__(
        self,
        app: "App",
        *,
        user: str,
        coordinators: set[str],
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        interactive: bool | None = None,
        files_dir: Path | None = None,
    ) -> None:
        self.app = app
        # Where pictures (charts) are written for a terminal that cannot show them.
        self.files_dir = files_dir or Path(tempfile.gettempdir()) / "volunteer-bot"
        self.user = user
        self.coordinators = coordinators
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.interactive = self.stdin.isatty() if interactive is None else interactive
        # A line, None at the end of input, or a decoding error for a line that was skipped.
        self._lines: asyncio.Queue[str | UnicodeDecodeError | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._print_lock = asyncio.Lock()
        self._ready = threading.Event()
        self._at_prompt = False

    def actor(self) -> Actor:
        """The current acting user."""
        return Actor(UserRef(PLATFORM, self.user, self.user), self.user in self.coordinators)

    async def start(self) -> None:
        """Start reading input and register the console as an outbox target."""
        self.app.services.outbox.register(PLATFORM, self.deliver)
        loop = asyncio.get_running_loop()
        reader = threading.Thread(
            target=self._read, args=(loop,), name="console-stdin", daemon=True
        )
        reader.start()
        self._task = asyncio.create_task(self._serve(), name="console")
        if self.interactive:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401 - enables line editing for input()
            self._write(f"volunteer-bot console — {HELP.replace('`', '')}\n")

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            self._ready.wait()
            self._ready.clear()
            line: str | UnicodeDecodeError
            try:
                line = self._next_line()
            except UnicodeDecodeError as exc:
                line = exc
            except EOFError:
                line = ""
            except (OSError, ValueError):
                line = ""
            with contextlib.suppress(RuntimeError):  # loop closed while we were blocked
                loop.call_soon_threadsafe(self._lines.put_nowait, line if line else None)
            if not line:
                return

    def _next_line(self) -> str:
        """One line of input, "" at its end; raises UnicodeDecodeError for one that is not text.

        A piped stream is read as bytes and decoded line by line, so one undecodable line
        is skipped, not the rest of the input with it.
        """
        if self.interactive:
            # input() gives line editing and history; the prompt shows who is acting.
            return input(f"{self.user}> ") + "\n"
        raw = getattr(self.stdin, "buffer", None)
        if raw is None:
            return self.stdin.readline()
        data: bytes = raw.readline()
        return data.decode("utf-8")

    async def _serve(self) -> None:
        try:
            while True:
                self._ready.set()
                self._at_prompt = self.interactive
                line = await self._lines.get()
                self._at_prompt = False
                if line is None:
                    break
                if isinstance(line, UnicodeDecodeError):
                    log.debug("console: a line of %d bytes is not UTF-8", len(line.object))
                    self._write(NOT_UTF8 + "\n")
                    continue
                if not await self.handle_line(line):
                    break
            # Deliver what the last commands made due, so a script sees it.
            await self._flush()
        finally:
            self._done.set()

    async def handle_line(self, line: str) -> bool:
        """Run one input line; returns False when the console should close."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        if text in (":quit", ":exit", ":q"):
            return False
        if text.startswith(":as"):
            name = text[3:].strip().lstrip("@")
            if name:
                self.user = name
                rights = " — coordinator" if name in self.coordinators else ""
                self._write(f"(now acting as {name}{rights})\n")
            else:
                self._write(f"(acting as {self.user}; `:as NAME` switches)\n")
            return True
        if text.startswith(":"):
            self._write(HELP.replace("`", "") + "\n")
            return True
        ctx = Ctx(actor=self.actor(), place=Place(PLATFORM), now=self.app.clock.now())
        # Posts the command causes (a milestone, say) wait until its reply is printed.
        async with self._print_lock:
            reply = await self.app.core.handle_text(ctx, text, prefixes=PREFIXES)
            if reply is not None:
                self._write(render(reply, ctx.reader) + "\n")
                for attachment in reply.attachments:
                    self._save(attachment)
        await self._flush()
        return True

    async def _flush(self) -> None:
        """Deliver due posts now; a database that is unavailable only delays them."""
        try:
            await self.app.services.outbox.run_once()
        except DatabaseUnavailable as exc:
            log.warning("posts not delivered yet: %s", exc)

    async def deliver(self, delivery: Delivery) -> None:
        """Print a post addressed to the console."""
        who = f"@{delivery.recipient_id}: " if delivery.recipient_id else ""
        async with self._print_lock:
            # At an idle prompt, print over it and show it again after the post.
            text = delivery.body.plain(delivery.reader)
            self._write(("\r" if self._at_prompt else "") + f"📣 {who}{text}\n")
            if delivery.attachment:
                self._write(f"   (attached: {delivery.attachment.filename})\n")
                self._save(delivery.attachment)
            if self._at_prompt:
                self._write(f"{self.user}> ")

    def _save(self, attachment: Attachment) -> None:
        """Write a file the terminal cannot show, and print where it is."""
        if is_text(attachment):
            return
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        name = Path(attachment.filename).name or "file"
        path = self.files_dir / f"{Path(name).stem}-{stamp}{Path(name).suffix}"
        try:
            self.files_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(attachment.data)
        except OSError as exc:
            log.warning("could not save %s: %s", attachment.filename, exc)
            return
        self._write(f"   saved as {path}\n")

    def _write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def status(self) -> Status:
        """The console is connected while it reads."""
        return Status(connected=not self._done.is_set())

    async def stop(self) -> None:
        """Stop serving."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_closed(self) -> None:
        """Return at end of input or ``:quit``."""
        await self._done.wait()


def render(reply: Reply, reader: Reader = ENGLISH) -> str:
    """A reply as terminal text; text attachments (like a data export) are shown in full."""
    parts = [reply.body.plain(reader)]
    parts += [f"  [{reader.gettext(b.label)}: {b.command}]" for b in reply.buttons]
    for a in reply.attachments:
        if is_text(a):
            parts += [f"--- {a.filename} ---", a.data.decode("utf-8", "replace"), "---"]
        else:
            parts.append(f"  (attached: {a.filename}, {len(a.data)} bytes)")
    return "\n".join(parts)


def is_text(attachment: Attachment) -> bool:
    """Whether a terminal can show the attachment as it is."""
    kind = attachment.content_type.split(";")[0].strip().lower()
    return kind.startswith("text/") or kind in TEXT_TYPES


__all__ = ["ConsoleAdapter", "Markup", "render"]
