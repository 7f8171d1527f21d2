from __future__ import annotations

import logging

from bot.logs import REDACTED, SecretFilter


def test_secret_filter_scrubs_message_args_and_tracebacks(caplog) -> None:
    secret = "bc_live_5up3r_s3cret"
    logger = logging.getLogger("test.secret")
    handler_filter = SecretFilter([secret])
    caplog.handler.addFilter(handler_filter)
    try:
        logger.warning("calling with key %s", secret)
        try:
            raise ValueError(f"bad key {secret}")
        except ValueError:
            logger.exception("failed")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert secret not in caplog.text
    assert REDACTED in caplog.text
