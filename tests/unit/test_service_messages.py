from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.jobs.service import validation_message
from bot.providers.base import VideoRequest


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"duration": 0}, "`duration` must be at least 1"),
        ({"duration": 999}, "`duration` must be at most 60"),
        ({"fps": "fast"}, "`fps` must be a whole number"),
        ({"seed": -1}, "`seed` must be at least 0"),
        ({"prompt": "   "}, "`prompt` must not be empty"),
        ({"prompt": "x" * 6000}, "`prompt` is too long (at most 5000 characters)"),
        ({"resolution": "big"}, "`resolution` must look like 1280x720"),
    ],
)
def test_validation_errors_read_as_what_to_change(fields, expected) -> None:
    values = {"prompt": "a cat", "provider": "simulator", **fields}
    with pytest.raises(ValidationError) as info:
        VideoRequest(**values)
    message = validation_message(info.value)
    assert message.startswith(expected), message
    assert "Input should be" not in message
