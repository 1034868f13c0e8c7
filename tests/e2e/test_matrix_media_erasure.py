"""After ``privacy forget`` the files the bot uploaded for the person are gone, or it says why."""

import itertools
import urllib.error

import pytest

from bot.domain import UserRef
from tests.e2e.matrix_kit import body, running_bot

pytestmark = pytest.mark.e2e

_names = itertools.count(1)


def download_status(synapse, uri: str, token: str) -> int:
    """The HTTP status of downloading an mxc:// file as a signed-in user."""
    server, _, media_id = uri.removeprefix("mxc://").partition("/")
    try:
        synapse.request("GET", f"/_matrix/client/v1/media/download/{server}/{media_id}",
                        token=token)  # fmt: skip
    except urllib.error.HTTPError as exc:
        return exc.code
    except ValueError:  # the file itself, not JSON: it downloaded
        return 200
    return 200


@pytest.mark.parametrize("admin", [True, False], ids=["bot-is-admin", "bot-is-not-admin"])
async def test_forget_deletes_the_export_file_or_says_why_it_cannot(
    tmp_path, synapse, person, admin
):
    bot = synapse.register(f"mediabot{next(_names)}", admin=admin)
    alice = await person("alice", "Alice", encrypted=True)
    bob = await person("bob", "Bob")
    room = await alice.create_room(invite=[bot.user_id, bob.user_id])
    await bob.join(room)
    you = UserRef("matrix", alice.user_id)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (app, _adapter):
        await alice.sees_join(room, bot.user_id)
        await alice.ask(room, "!volunteer join translator --country PL", bot.user_id)
        await alice.send(room, "!privacy mydata")
        direct = await alice.wait_for_invite()
        await alice.join(direct)
        files = await alice.wait_for(
            lambda e: e["room_id"] == direct and e.get("sender") == bot.user_id
            and (e.get("content") or {}).get("msgtype") == "m.file"
        )  # fmt: skip
        uploads = await app.services.uploads.repo.of(you)
        assert [u.event_id for u in uploads] == [files[0]["event_id"]]
        uri = uploads[0].uri
        assert download_status(synapse, uri, alice.account.access_token) == 200

        mydata = await alice.ask(room, "!privacy mydata", bot.user_id)
        assert "1 file the bot sent only to you" in body(mydata) or "direct chat" in body(mydata)
        forget = await alice.ask(room, "!privacy forget --confirm", bot.user_id)
        assert await app.services.uploads.repo.of(you) == [], "the record is erased too"
    answer = body(forget)
    assert answer.startswith("Done."), answer
    status = download_status(synapse, uri, alice.account.access_token)
    if admin:
        assert status == 404, "the export file is deleted from the media store"
        assert "I deleted the 2 files I had sent only to you" in answer, answer
    else:
        assert status == 200
        assert "could not be deleted from the server: the bot's account is not an admin" in answer
    redacted = await alice.raw_event(direct, files[0]["event_id"])
    assert "file" not in redacted["content"] and "url" not in redacted["content"], redacted
