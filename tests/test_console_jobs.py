"""The issue's story in the console, as a real process: one leaflet into three languages."""

import re

from tests.cli import bot

STORY = """
:as coco
task post translation Leaflet --language pl,de,fr --source-language en --source https://example.org/leaflet.odt
:as ana
volunteer join translator --languages pl,en
task claim 1
task done 1 https://example.org/pl.odt
:as hans
volunteer join translator --languages de,en
task next
task done 2 here: https://example.org/de.odt
:as fleur
volunteer join translator --languages fr,en
task claim 3
task extend 3
task done 3 https://example.org/fr.odt
:as piotr
volunteer join translator --languages pl
task review 2 approve
task next --review
task review 1 approve
:as greta
volunteer join translator --languages de
task review 2 changes the headline is too long
:as hans
task show 2
task done 2 https://example.org/de-v2.odt
:as greta
task review 2 approve
:as marie
volunteer join translator --languages fr
task review 3 approve
job show 1
job list
"""


def test_a_leaflet_into_three_languages_translated_reviewed_and_shown_in_the_job_table(tmp_path):
    run = bot("--as", "coco", "--coordinator", "coco", stdin=STORY, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Traceback" not in out + run.stderr
    # One post: a job of three tasks, each number with its language.
    assert "Posted job #1 “Leaflet” — translation from en, 3 tasks:" in out
    assert "#1 Polish (pl)\n#2 German (de)\n#3 French (fr)" in out
    # Three translators each take one (one keeps her claim a while) and hand in a link.
    assert "Task #3 “Leaflet” stays yours" in out
    assert out.count("is handed in for review") == 4, "three, and the German one again"
    # A second speaker of each language: the wrong one is refused, the right one approves.
    assert "translation into German (de), which is not among your languages (pl)" in out
    assert "You are reviewing task #1" in out
    # Changes reach the translator, and task show has the note.
    assert re.search(r"📣 @hans: greta asked for changes to task #2 “Leaflet”: "
                     r"“the headline is too long”", out), out  # fmt: skip
    assert "Changes asked by greta: the headline is too long" in out
    # The job table tells the whole story.
    table = out.split("Job #1 “Leaflet”", 1)[1]
    assert "Source: https://example.org/leaflet.odt" in table
    assert "progress: 3 done" in table
    assert "• pl Polish — #1 done by ana, approved by piotr: https://example.org/pl.odt" in table
    assert "• de German — #2 done by hans, approved by greta: https://example.org/de-v2.odt" in (
        table
    )
    assert "• fr French — #3 done by fleur, approved by marie: https://example.org/fr.odt" in table
    assert "#1 Leaflet — translation, 3 languages: 3 done" in table
