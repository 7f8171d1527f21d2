"""Animate (Apps → Animate on a message) end to end: real discord.py against the fake
Discord's message-command and modal-submit interactions, real HTTP to the fake providers,
real clips decoded with PyAV."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

import bot.jobs.tracker.settings
from bot.jobs import animate as policy
from bot.jobs.tracker import TrackerSettings
from tests.e2e.conftest import (
    VideoHarness,
    corner_colors,
    image_file,
    near,
    record_ack,
)
from tests.fakes.bytecompute_server import FakeByteCompute
from tests.fakes.discord_server import FakeFile, FakeInteraction, FakeMessage, modal_text_inputs
from tests.fakes.payloads import CallbackType

RED = (220, 40, 30)
GREEN = (40, 200, 60)
BLUE = (30, 60, 220)
PROMPT_LABEL = "Prompt: what should happen in the clip"
DURATION_LABEL = "Duration in seconds (optional)"


@pytest.fixture(autouse=True)
def quick_first_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider fakes finish in 0.2 s; without history the tracker would expect minutes."""
    quick = functools.partial(
        TrackerSettings, prior_base_seconds=0.3, prior_seconds_per_video_second=0.0
    )
    monkeypatch.setattr(bot.jobs.tracker.settings, "TrackerSettings", quick)


async def post(
    v: VideoHarness, content: str, *files: FakeFile, user_id: int | None = None, **kw: Any
) -> FakeMessage:
    return await v.fake.post_user_message(
        v.world.channel_id, user_id or v.world.user_id, content, files=files, **kw
    )


async def animate(v: VideoHarness, message: FakeMessage, user_id: int | None = None) -> Any:
    """Apps → Animate on `message`; returns the interaction once it was answered."""
    inter = await v.fake.send_message_command(message, "Animate", user_id or v.world.user_id)
    await inter.wait_for_callback()
    record_ack(inter)
    return inter


async def submit(v: VideoHarness, inter: FakeInteraction, **values: str) -> FakeInteraction:
    """Submit the modal `inter` was answered with (`prompt=`, `duration=`)."""
    labels = {"prompt": PROMPT_LABEL, "duration": DURATION_LABEL}
    sub = await v.fake.send_modal_submit(inter, {labels[k]: val for k, val in values.items()})
    await sub.wait_for_callback()
    record_ack(sub)
    return sub


async def clip(v: VideoHarness) -> FakeMessage:
    """The bot's clip in the channel (the member's own message has attachments too)."""
    return await v.result(lambda m: m.author_id == v.fake.bot_user_id)


def refusal_text(inter: FakeInteraction) -> str:
    """The menu answered with an ephemeral message (no modal): its text."""
    callback = inter.callback
    assert callback is not None and callback.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE
    assert callback.ephemeral and inter.modal is None
    assert callback.data is not None
    return str(callback.data["content"])


async def audit_data(v: VideoHarness, kind: str) -> list[dict[str, Any]]:
    return [json.loads(row[4]) for row in await v.audit(kind)]


async def test_animate_is_registered_as_a_message_command(video_bot) -> None:
    async with video_bot() as v:
        (menu,) = [c for c in v.fake.commands() if c["name"] == "Animate"]
        assert menu["type"] == 3 and not menu["options"] and menu["description"] == ""
        assert menu["contexts"] == [0]  # servers only, like /video
        admin = next(c for c in v.fake.commands() if c["name"] == "videoadmin")
        sub = next(o for o in admin["options"] if o["name"] == "animate")
        assert [o["name"] for o in sub["options"]] == ["others"]


async def test_one_image_reaches_the_provider_as_image_to_video(video_bot) -> None:
    picture = image_file("harbour.png", width=768, height=512, color=RED)
    notes = FakeFile("notes.txt", b"not an image", "text/plain")
    async with FakeByteCompute(job_seconds=0.2) as server:
        settings = {
            "bytecompute_api_key": server.api_key,
            "bytecompute_base_url": server.base_url,
            "default_provider": "bytecompute",
        }
        async with video_bot(**settings) as v:
            text = "  Boats rock gently in the harbour at dawn  "
            message = await post(v, text, notes, picture)
            inter = await animate(v, message)
            modal = inter.modal
            assert modal is not None and modal.data is not None
            assert modal.data["title"] == "Animate this message"
            inputs = modal_text_inputs(modal.data)
            # Prefilled with the message's text (trimmed); duration left to the provider.
            assert inputs[PROMPT_LABEL]["value"] == text.strip()
            assert not inputs[DURATION_LABEL].get("value")
            assert v.attachment_downloads() == 0  # downloaded at submit, not before
            sub = await submit(v, inter, duration="6")
            assert sub.callback is not None
            assert sub.callback.type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
            private = (await v.private(sub)).content
            assert "image-to-video" in private and "bytecompute" in private
            result = await clip(v)
            assert v.clip_info(result).frames > 0
            # What reached the provider: the image as `image`, the message text as prompt.
            (sent,) = server.requests_to("/v1/generate")
            assert set(sent.files) == {"image"}
            assert sent.files["image"].size == len(picture.data)
            assert sent.form["prompt"] == text.strip() and sent.form["duration"] == "6"
            assert v.attachment_downloads() == 1  # the image only, not the text file
            job = await v.wait_job(1, "delivered")
            assert job.mode.value == "image-to-video"
            assert job.source is not None and job.source.message_id == message.id
            # The generation's audit entry names the source message and its author.
            (entry,) = await audit_data(v, "generation")
            url = f"https://discord.com/channels/{v.world.guild_id}/{message.channel_id}/"
            assert entry["source"]["url"] == url + str(message.id)
            assert entry["source"]["author_id"] == v.world.user_id
            assert entry["source"]["author_kind"] == "member"
            (row,) = await v.audit("generation")
            assert f"animated from {url}{message.id}" in row[3]


async def test_two_images_go_from_the_first_to_the_last(video_bot) -> None:
    async with video_bot() as v:
        message = await post(
            v,
            "",
            image_file("a.png", width=512, height=512, color=RED),
            FakeFile("clip.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
            image_file("b.jpg", width=512, height=512, color=GREEN),
            image_file("c.webp", width=512, height=512, color=BLUE),
        )
        inter = await animate(v, message)
        assert inter.modal is not None and inter.modal.data is not None
        assert not modal_text_inputs(inter.modal.data)[PROMPT_LABEL].get("value")  # no text
        sub = await submit(v, inter, prompt="sunrise to dusk", duration="4")
        private = (await v.private(sub)).content
        assert "frame-to-video" in private
        result = await clip(v)
        first, last = corner_colors(v.clip_path(result))
        assert near(first, RED) and near(last, BLUE), (first, last)
        job = await v.wait_job(1, "delivered")
        assert job.mode.value == "frame-to-video" and job.prompt == "sunrise to dusk"
        assert v.attachment_downloads() == 2  # first and last; the middle image is not used


async def test_two_images_reach_the_provider_as_first_and_last_frame(video_bot) -> None:
    first = image_file("first.png", width=768, height=512, color=RED)
    last = image_file("last.png", width=768, height=512, color=BLUE)
    async with FakeByteCompute(job_seconds=0.2) as server:
        settings = {
            "bytecompute_api_key": server.api_key,
            "bytecompute_base_url": server.base_url,
            "default_provider": "bytecompute",
        }
        async with video_bot(**settings) as v:
            message = await post(v, "a day passes", first, last)
            inter = await animate(v, message)
            await v.private(await submit(v, inter))
            result = await clip(v)
            (sent,) = server.requests_to("/v1/generate")
            assert set(sent.files) == {"first_frame", "last_frame"}
            assert sent.files["first_frame"].size == len(first.data)
            assert sent.files["last_frame"].size == len(last.data)
            assert sent.form["prompt"] == "a day passes"
            # Again on the animated clip: the same frames again (kept copies, no second
            # download), and the new job still names its source message.
            await v.reply(await v.press(result, "ltx:again:1"))
            again = await v.wait_job(2, "delivered")
            assert again.source is not None and again.source.message_id == message.id
            (_, resent) = server.requests_to("/v1/generate")
            assert set(resent.files) == {"first_frame", "last_frame"}
            assert resent.files["last_frame"].size == len(last.data)
            assert v.attachment_downloads() == 2


async def test_other_members_images_need_the_server_switch(video_bot) -> None:
    async with (
        FakeByteCompute(job_seconds=0.2) as server,
        video_bot(
            bytecompute_api_key=server.api_key,
            bytecompute_base_url=server.base_url,
            default_provider="bytecompute",
        ) as v,
    ):
        w = v.world
        theirs = await post(v, "my cat", image_file("cat.png"), user_id=w.admin_id)
        hook = await post(v, "feed", image_file("feed.png"), webhook_id=987654321)
        # Default: another member's and a webhook's message are refused at once, no modal.
        for message in (theirs, hook):
            text = refusal_text(await animate(v, message))
            assert text == policy.MSG_OTHERS_OFF
        assert v.attachment_downloads() == 0
        # The admin allows it (audited), and the same Animate now opens the modal.
        admin = await v.command({"others": True}, name="videoadmin animate", user_id=w.admin_id)
        assert "Done" in await v.reply(admin)
        (change,) = await audit_data(v, "admin")
        assert change["setting"] == "animate_others" and change["new"] is True
        inter = await animate(v, theirs)
        sub = await submit(v, inter, prompt="the cat yawns", duration="4")
        assert "image-to-video" in (await v.private(sub)).content
        await clip(v)
        job = await v.wait_job(1, "delivered")
        assert job.user_id == w.user_id  # charged to who asked, not to the poster
        assert job.source is not None and job.source.author_id == w.admin_id
        (entry,) = await audit_data(v, "generation")
        assert entry["source"]["author_id"] == w.admin_id
        # Turned off again while a modal is open: the submit is refused, nothing charged.
        inter = await animate(v, hook)
        assert inter.modal is not None
        await v.reply(
            await v.command({"others": False}, name="videoadmin animate", user_id=w.admin_id)
        )
        ledger = await v.ledger()
        sub = await submit(v, inter, prompt="scroll the feed")
        assert policy.MSG_OTHERS_OFF in (await v.private(sub)).content
        assert await v.ledger() == ledger and len(await v.jobs()) == 1


async def test_a_message_without_an_image_gets_a_clear_answer(video_bot) -> None:
    async with video_bot() as v:
        for files in ((), (FakeFile("notes.txt", b"hello", "text/plain"),)):
            inter = await animate(v, await post(v, "just words", *files))
            assert refusal_text(inter) == policy.MSG_NO_IMAGE
        assert await v.jobs() == [] and v.attachment_downloads() == 0


async def test_bad_duration_and_blocked_term_are_refused_like_video(video_bot) -> None:
    async with video_bot() as v:
        w = v.world
        added = await v.command(
            {"term": "forbidden"}, name="videoadmin blockword add", user_id=w.admin_id
        )
        await v.reply(added)
        message = await post(v, "", image_file("x.png"))
        # A duration the modal can't take: answered at once, nothing downloaded.
        sub = await submit(v, await animate(v, message), prompt="waves", duration="ninety")
        assert refusal_text(sub) == policy.MSG_DURATION
        assert v.attachment_downloads() == 0
        # A blocked term in the modal's prompt: the same refusal /video gives.
        via_video = await v.refusal({"prompt": "a forbidden dance"})
        sub = await submit(v, await animate(v, message), prompt="a forbidden dance")
        refused = await v.private(sub)
        assert refused.content == via_video.content and "blocked" in refused.content.lower()
        assert not [m for m in sub.followups if not m.ephemeral], "nothing public"
        assert await v.ledger() == [] and await v.jobs() == [] and v.submits() == 0
        refusals = await audit_data(v, "refusal")
        assert [r["reason"] for r in refusals] == ["blocked_word", "blocked_word"]


async def test_an_oversized_image_is_refused_before_the_modal(video_bot) -> None:
    huge = FakeFile("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(11 * 2**20), "image/png")
    async with video_bot() as v:
        text = refusal_text(await animate(v, await post(v, "big", huge)))
        assert "images must be at most 10 MB" in text
        assert v.attachment_downloads() == 0
