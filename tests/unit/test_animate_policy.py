"""Animate's decisions (bot/jobs/animate.py) and their traces: the guild switch (audited,
real database), the source in the job row and the generation's mod-log embed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.db import Database, utcnow
from bot.jobs import SourceMessage
from bot.jobs import animate as policy
from bot.jobs.service import RequestRefused
from bot.moderation import AuditEntry
from bot.providers.base import Mode, NegotiatedRequest
from bot.store import jobs as job_store
from cogs.ui.modlog import render_entry

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)


def test_one_image_animates_it_and_two_or_more_go_first_to_last() -> None:
    assert policy.input_slots(0) == {}
    assert policy.input_slots(1) == {"image": 0}
    assert policy.input_slots(2) == {"first_frame": 0, "last_frame": 1}
    assert policy.input_slots(5) == {"first_frame": 0, "last_frame": 4}


def test_images_are_told_by_discords_type_or_else_the_name() -> None:
    assert policy.is_image("image/png", "a.bin") and policy.is_image("IMAGE/JPEG; q=1", "x")
    assert not policy.is_image("video/mp4", "a.png") and not policy.is_image("text/plain", "a")
    assert policy.is_image(None, "Photo.JPG") and not policy.is_image(None, "notes.txt")


def test_own_messages_only_and_webhooks_are_never_own() -> None:
    assert policy.is_own(1, 1, policy.AUTHOR_MEMBER)
    assert not policy.is_own(1, 2, policy.AUTHOR_MEMBER)
    assert not policy.is_own(1, 1, policy.AUTHOR_WEBHOOK)
    assert not policy.is_own(1, 1, policy.AUTHOR_BOT)
    assert policy.author_kind(is_bot=True, webhook_id=None) == policy.AUTHOR_BOT
    assert policy.author_kind(is_bot=True, webhook_id=5) == policy.AUTHOR_WEBHOOK
    assert policy.author_kind(is_bot=False, webhook_id=None) == policy.AUTHOR_MEMBER


def test_prefill_trims_and_cuts_on_a_word_boundary() -> None:
    assert policy.prefill("   \n ", 100) is None
    assert policy.prefill("  a cat  ", 100) == "a cat"
    long = "word " * 500  # 2,500 characters
    cut = policy.prefill(long, 2000)
    assert cut is not None and len(cut) <= 2000 and cut.endswith("word")
    solid = "x" * 2500
    assert policy.prefill(solid, 2000) == "x" * 2000


@pytest.mark.parametrize(("text", "expected"), [("", None), (" ", None), ("6", 6), ("20 s", 20)])
def test_duration_is_optional_whole_seconds(text: str, expected: int | None) -> None:
    assert policy.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0", "21", "ninety", "5.5", "-3", "²", "9" * 50])
def test_a_bad_duration_says_what_to_type(text: str) -> None:
    with pytest.raises(RequestRefused) as caught:
        policy.parse_duration(text)
    assert caught.value.message == policy.MSG_DURATION and "1 to 20" in policy.MSG_DURATION


async def test_the_switch_defaults_off_and_every_change_is_audited(db: Database) -> None:
    assert await policy.others_allowed(db, 7) is False
    change = await policy.set_others_allowed(db, 7, True, actor_id=99, now=utcnow())
    assert (change.old, change.new) == (False, True)
    assert (
        await policy.others_allowed(db, 7) is True and await policy.others_allowed(db, 8) is False
    )
    await policy.set_others_allowed(db, 7, False, actor_id=99, now=utcnow())
    assert await policy.others_allowed(db, 7) is False
    rows = await db.fetchall("SELECT actor_id, data_json FROM audit_log ORDER BY id")
    assert [(r[0], json.loads(r[1])["new"]) for r in rows] == [(99, True), (99, False)]


async def test_the_source_is_kept_with_the_job(db: Database) -> None:
    source = SourceMessage(
        guild_id=1, channel_id=2, message_id=3, author_id=4, author_kind=policy.AUTHOR_BOT
    )
    request = NegotiatedRequest(
        prompt="p", provider="simulator", model="m", mode=Mode.TEXT, duration=4,
        width=512, height=512, fps=25,
    )  # fmt: skip
    async with db.transaction() as conn:
        with_source = await job_store.insert_job(
            conn, guild_id=1, channel_id=2, user_id=5, request=request, input_dir=None,
            source=source, now=utcnow(),
        )  # fmt: skip
        without = await job_store.insert_job(
            conn, guild_id=1, channel_id=2, user_id=5, request=request, input_dir=None,
            now=utcnow(),
        )  # fmt: skip
    got = await job_store.get_job(db, with_source)
    assert got is not None and got.source == source
    other = await job_store.get_job(db, without)
    assert other is not None and other.source is None


def test_the_mod_log_embed_names_the_source_message_and_author() -> None:
    url = "https://discord.com/channels/1/2/3"
    entry = AuditEntry(
        id=1,
        guild_id=1,
        at=datetime(2025, 6, 1, tzinfo=UTC),
        kind="generation",
        actor_id=5,
        target_id=5,
        summary="job 1 delivered",
        data={"source": {"url": url, "author_id": 4, "author_kind": "webhook"}},
    )
    fields = {f.name: f.value for f in render_entry(entry).fields}
    assert fields["Animated from"] == f"[message]({url}) by <@4> (webhook)"
