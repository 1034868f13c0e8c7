"""A revoked access token: the bot logs in again with its password, or exits non-zero saying so."""

import json

import pytest

from tests.e2e.matrix_kit import BotProcess, body, matrix_section, toml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def config(tmp_path, synapse, bot, room, **matrix) -> str:
    section = matrix_section(
        synapse, bot, rooms=[room], store_path=str(tmp_path / "store"), **matrix
    )
    section = {key: value for key, value in section.items() if value is not None}
    return toml({"storage": {"url": f"sqlite:///{tmp_path / 'bot.db'}"}, "matrix": section})


def revoke(synapse, token: str) -> None:
    """Log the token out, as an operator (or Element's session list) would."""
    synapse.request("POST", "/_matrix/client/v3/logout", {}, token=token)


async def test_without_a_password_a_revoked_token_exits_non_zero_saying_why(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice")
    room = await alice.create_room(invite=[bot.user_id])
    process = BotProcess(tmp_path, config(tmp_path, synapse, bot, room), {})
    try:
        await process.start()
        revoke(synapse, bot.access_token)
        await alice.send(room, "!volunteer profile")  # wakes the bot's long poll
        code = await process.exits_by_itself()
    finally:
        process.stop()
    output = process.output + "".join(process.stdout)
    assert code != 0, "a supervisor must see the failure and not leave the bot down"
    reasons = [line for line in process.log if "access token was revoked" in line]
    assert len(reasons) == 1 and "set a new matrix.access_token" in reasons[0], output[-2000:]
    assert bot.access_token not in output and bot.password not in output
    assert "Traceback" not in output


async def test_with_a_password_a_revoked_token_is_replaced_by_a_new_login(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice")
    room = await alice.create_room(invite=[bot.user_id])
    process = BotProcess(
        tmp_path,
        config(tmp_path, synapse, bot, room, access_token=None),
        {"VOLUNTEER_BOT_MATRIX__PASSWORD": bot.password},
    )
    credentials = tmp_path / "store" / "credentials.json"
    try:
        await process.start()
        first = json.loads(credentials.read_text())["access_token"]
        revoke(synapse, first)
        command = await alice.send(room, "!volunteer join translator")
        answer = await alice.reply_to(command, bot.user_id, within=60)
        assert process.count("logging in again with the password") == 1
        assert "registered as translator" in body(answer)
        after = await alice.ask(room, "!volunteer profile", bot.user_id)
        assert "translator" in body(after)
        second = json.loads(credentials.read_text())["access_token"]
        assert second != first
        assert process.process is not None and process.process.poll() is None
    finally:
        code = process.stop()
    assert code == 0
    output = process.output + "".join(process.stdout)
    for secret in (bot.password, first, second):
        assert secret not in output
    assert "Traceback" not in output
