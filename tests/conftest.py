from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Harness, make_app


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    app = make_app(tmp_path)
    try:
        yield Harness(app)
    finally:
        await app.stop()
