"""Replies as JSON, so an answer can be kept in the database until it is sent."""

import base64
import json
from typing import Any

from bot.context import Attachment, Button, Reply
from bot.domain import Markup, UserRef
from bot.domain.i18n import SOURCE_LANGUAGE, Reader


def dump(reply: Reply) -> dict[str, Any]:
    """A JSON-ready form of ``reply`` that :func:`load` turns back into an equal one."""
    return {
        "body": reply.body.dump(),
        "private": reply.private,
        "confidential": reply.confidential,
        "is_error": reply.is_error,
        "buttons": [[b.label, b.command] for b in reply.buttons],
        "attachments": [
            [a.filename, base64.b64encode(a.data).decode("ascii"), a.content_type]
            for a in reply.attachments
        ],
        "mentions": [[m.platform, m.external_id, m.display_name] for m in reply.mentions],
        "subject": list(reply.subject) if reply.subject else None,
        "language": reply.reader.language,
    }


def load(data: dict[str, Any]) -> Reply:
    """The reply :func:`dump` made."""
    subject = data.get("subject")
    return Reply(
        body=Markup.load(data["body"]),
        private=bool(data["private"]),
        confidential=bool(data.get("confidential", False)),
        is_error=bool(data["is_error"]),
        buttons=tuple(Button(label, command) for label, command in data["buttons"]),
        attachments=tuple(
            Attachment(name, base64.b64decode(blob), kind)
            for name, blob, kind in data["attachments"]
        ),
        mentions=tuple(UserRef(p, i, n) for p, i, n in data["mentions"]),
        subject=(str(subject[0]), int(subject[1])) if subject else None,
        reader=Reader(language=str(data.get("language") or SOURCE_LANGUAGE)),
    )


def dumps(reply: Reply, **extra: object) -> str:
    """``reply`` and what is needed to send it (``extra``) as one JSON text."""
    return json.dumps({"reply": dump(reply), **extra}, separators=(",", ":"))


def loads(text: str) -> tuple[Reply, dict[str, Any]]:
    """The reply and the extra fields :func:`dumps` kept."""
    data = json.loads(text)
    return load(data.pop("reply")), data
