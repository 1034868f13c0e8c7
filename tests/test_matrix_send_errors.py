"""Which refusals of a Matrix send are final, and which are worth sending again."""

import pytest

from bot.adapters.matrix_adapter import MatrixSendError

CASES = [
    ("M_FORBIDDEN", 403, True),
    ("M_TOO_LARGE", 413, True),
    ("M_UNKNOWN_ROOM", None, True),
    ("M_BAD_JSON", 400, True),
    ("EncryptionError", None, True),
    ("M_LIMIT_EXCEEDED", 429, False),
    ("M_UNKNOWN_TOKEN", 401, False),
    ("M_UNKNOWN", 500, False),
    (None, 502, False),
    (None, 503, False),
    (None, None, False),
    ("M_SOMETHING_NEW", 400, True),
]


@pytest.mark.parametrize(("errcode", "status", "permanent"), CASES)
def test_only_refusals_no_resend_can_change_drop_the_answer(errcode, status, permanent):
    assert MatrixSendError(errcode, status).permanent is permanent
