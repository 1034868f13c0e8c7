"""`task report` and `task import` on Matrix, against a real Synapse."""

import pytest

from tests.e2e.matrix_kit import body, running_bot

pytestmark = pytest.mark.e2e


async def test_the_report_arrives_with_its_chart_and_import_says_where_files_go(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    coco = await person("coco", "Coco")  # creates the room: power level 100, a coordinator
    room = await coco.create_room(invite=[bot.user_id])
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        await coco.sees_join(room, bot.user_id)
        await coco.ask(room, "!task post translation Leaflet --language pl", bot.user_id)
        command = await coco.send(room, "!task report")
        [image] = await coco.wait_for(
            lambda e: (
                e.get("sender") == bot.user_id
                and (e.get("content") or {}).get("msgtype") == "m.image"
            )
        )
        report = await coco.reply_to(command, bot.user_id)
        refusal = await coco.ask(room, "!task import tasks.csv", bot.user_id)
    assert "pl: 1 open · 0 claimed · 0 in review · 0 done" in body(report)
    assert image["content"]["body"] == "coverage.png"
    assert image["content"]["info"]["mimetype"] == "image/png"
    assert "A file cannot come with a text command" in body(refusal)
    assert "volunteer-bot tasks import FILE.csv" in body(refusal)
