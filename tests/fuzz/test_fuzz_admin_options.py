"""The text options of `/videoadmin` fuzzed through the functions that read them: block
durations, log export dates, blocked terms and expressions, and `blockword remove`'s
"#number or text". Each gives a value or a `ModerationError`/`RuleError` with a message
that says what to type; never another exception."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from bot import moderation, textmatch
from bot.db import Database
from tests.fuzz import strategies as s
from tests.fuzz.budget import fuzz

short_text = st.one_of(
    st.text(max_size=32),
    st.text(st.sampled_from("0123456789mhdw ²٣０-+.:"), max_size=12),
    st.sampled_from(["forever", "1d12h", "30m", "99999999999999999999w", "0m", "1 w 2 d"]),
)


@fuzz(300)
@given(text=short_text)
@example(text="²d")
@example(text="٣d")
def test_block_durations(text: str) -> None:
    try:
        delta = moderation.parse_duration(text)
    except moderation.ModerationError as exc:
        assert exc.message and ("duration" in exc.message or "block" in exc.message.lower())
        return
    if delta is not None:
        assert 60 <= delta.total_seconds() <= moderation.MAX_BLOCK_DAYS * 86_400


@fuzz(200)
@given(text=st.text(max_size=10))
def test_export_dates(text: str) -> None:
    try:
        moderation.parse_day(text, "since")
    except moderation.ModerationError as exc:
        assert "`since`" in exc.message and "YYYY-MM-DD" in exc.message


@fuzz(300)
@given(
    pattern=st.one_of(s.nasty_text, st.text(max_size=60), st.text("()[]{}*+?|\\^$.a1", max_size=30))
)
@example(pattern="a{99999999999}")
@example(pattern="(" * 200 + "a" + ")" * 200)
def test_blocked_terms_and_expressions(pattern: str) -> None:
    for check in (textmatch.term_key, textmatch.check_regex_static):
        try:
            check(pattern)
        except textmatch.RuleError as exc:
            assert exc.message.strip()


@fuzz(40)
@given(
    texts=st.lists(
        st.one_of(st.text(max_size=20), st.builds("#{}".format, s.number_text)), max_size=6
    )
)
@example(texts=["#²", "#" + "9" * 5000, "#١"])
def test_blockword_remove_lookups(texts: list[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-terms-"))

    async def main() -> None:
        db = await Database.open(tmp / "bot.db")
        try:
            await db.migrate()
            now = datetime.now(UTC)
            added = await moderation.add_blocked_term(
                db, 1, "forbidden", is_regex=False, actor_id=9, now=now
            )
            for text in texts:
                try:
                    found = await moderation.resolve_term(db, 1, text)
                except moderation.ModerationError as exc:
                    assert "blockword list" in exc.message or "give the number" in exc.message
                else:
                    assert found.id == added.id
        finally:
            await db.close()

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
