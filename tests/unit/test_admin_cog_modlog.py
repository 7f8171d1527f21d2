"""Mod-log embeds (content, inertness, Discord limits) and the poster's error mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.errors import PermanentPostError
from bot.moderation import AuditEntry
from cogs.ui.modlog import make_poster, render_entry

AT = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


def entry(**kw: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "id": 17,
        "guild_id": 111,
        "at": AT,
        "kind": "generation",
        "actor_id": 42,
        "target_id": 42,
        "channel_id": 300,
        "job_id": 9,
        "summary": "job 9 delivered",
        "data": {},
    }
    values.update(kw)
    return AuditEntry(**values)


GENERATION = {
    "prompt": "a *dramatic* sunset @everyone <@123456789012345678> __wow__",
    "mode": "image-to-video",
    "settings": {"duration": 6, "width": 1280, "height": 720, "fps": 24, "audio": True, "seed": 5},
    "inputs": [
        {"name": "image", "sha256": "ab" * 32, "url": "https://cdn.discordapp.com/a/b/in.png"},
        {"name": "last_frame", "sha256": "cd" * 32},
    ],
    "provider": "bytecompute",
    "model": "ltx-2.3",
    "provider_job_id": "bc-123",
    "cost_usd": 0.48,
    "outcome": "delivered",
    "result_url": "https://discord.com/channels/111/300/555",
}


def fields(embed: discord.Embed) -> dict[str, str]:
    return {f.name or "": f.value or "" for f in embed.fields}


def test_generation_embed_has_the_details() -> None:
    embed = render_entry(entry(data=GENERATION))
    assert embed.title == "🎬 Generation · delivered"
    assert embed.colour == discord.Colour.green()
    got = fields(embed)
    assert got["Member"] == "<@42>" and "By" not in got  # actor == member
    assert got["Channel"] == "<#300>"
    assert got["Settings"] == "image-to-video · 6 s · 1280×720 · 24 fps · audio · seed 5"
    assert got["Provider"] == "bytecompute (ltx-2.3) · job `bc-123`"
    assert got["Cost"] == "$0.48"
    assert got["Result"] == "[Jump to the message](https://discord.com/channels/111/300/555)"
    assert "image: `abababababababab`" in got["Inputs"]
    assert embed.thumbnail.url == "https://cdn.discordapp.com/a/b/in.png"
    assert embed.timestamp == AT
    assert embed.footer.text == "audit #17 · guild 111"
    # The prompt is inert: markdown escaped, mentions broken.
    assert embed.description is not None
    assert "\\*dramatic\\*" in embed.description and "\\_\\_wow\\_\\_" in embed.description
    assert "@everyone" not in embed.description
    assert "<@123456789012345678>" not in embed.description


def test_refusal_and_admin_embeds() -> None:
    refusal = render_entry(
        entry(kind="refusal", job_id=None, data={"reason": "blocked_word", "prompt": "nsfw"})
    )
    assert refusal.title == "⛔ Refused · blocked term"
    admin = render_entry(
        entry(
            kind="admin",
            actor_id=7,
            target_id=42,
            job_id=None,
            channel_id=None,
            summary="blocked member 42",
            data={"setting": "blocked", "old": "not blocked", "new": "blocked", "reason": "*x*"},
        )
    )
    got = fields(admin)
    assert got["By"] == "<@7>" and got["Member"] == "<@42>"
    assert got["Change"] == "blocked: not blocked → blocked"
    assert got["Reason"] == "\\*x\\*"
    odd = render_entry(
        entry(kind="custom_kind", data={"prompt": 5, "cost_usd": "x", "inputs": "?"})
    )
    assert odd.title is not None and "Custom_Kind" in odd.title  # unknown shapes don't crash


def test_only_http_urls_are_used() -> None:
    data = {
        "inputs": [{"name": "image", "sha256": "00", "url": "javascript:alert(1)"}],
        "result_url": "file:///etc/passwd",
    }
    embed = render_entry(entry(data=data))
    assert embed.thumbnail.url is None
    assert "Result" not in fields(embed)


@pytest.mark.parametrize("size", [10, 5000, 100_000])
def test_embed_limits_are_respected(size: int) -> None:
    huge = {
        **GENERATION,
        "prompt": "`*_" * size,
        "failure_reason": "r" * size,
        "provider": "p" * size,
        "settings": {"duration": "d" * size, "fps": "f" * size},
        "inputs": [{"name": "n" * size, "sha256": "s" * size, "url": "https://x/" + "u" * 1400}]
        * 5,
        "setting": "x" * size,
        "old": "o" * size,
        "new": "n" * size,
        "reason": "r" * size,
    }
    for kind in ("generation", "admin", "refusal"):
        embed = render_entry(entry(kind=kind, summary="s" * size, data=huge))
        assert len(embed) <= 6000
        assert len(embed.title or "") <= 256
        assert len(embed.description or "") <= 4096
        assert len(embed.fields) <= 25
        for f in embed.fields:
            assert len(f.name or "") <= 256 and 0 < len(f.value or "") <= 1024
        assert len(embed.footer.text or "") <= 2048
        payload = embed.to_dict()
        assert payload["type"] == "rich"


# ----- the poster ------------------------------------------------------------------------


class FakeChannel(discord.abc.Messageable):
    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.error = error

    async def _get_channel(self) -> Any:
        return self

    async def send(self, content: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.error is not None:
            raise self.error
        self.sent.append(kwargs)
        return None


class FakeBot:
    def __init__(self, channel: Any = None, fetch_error: Exception | None = None) -> None:
        self.channel = channel
        self.fetch_error = fetch_error
        self.fetched: list[int] = []

    def get_channel(self, channel_id: int) -> Any:
        return self.channel

    async def fetch_channel(self, channel_id: int) -> Any:
        self.fetched.append(channel_id)
        if self.fetch_error is not None:
            raise self.fetch_error
        return FakeChannel()


def http_error(cls: type[discord.HTTPException], status: int) -> discord.HTTPException:
    return cls(SimpleNamespace(status=status, reason="x"), {"message": "nope", "code": 0})


async def test_poster_sends_the_embed_without_mentions() -> None:
    channel = FakeChannel()
    await make_poster(FakeBot(channel))(entry(data=GENERATION), 300)  # type: ignore[arg-type]
    [sent] = channel.sent
    assert sent["allowed_mentions"].to_dict() == {"parse": []}
    assert sent["embed"].title == "🎬 Generation · delivered"


async def test_poster_fetches_uncached_channels() -> None:
    bot = FakeBot(None)
    await make_poster(bot)(entry(), 300)  # type: ignore[arg-type]
    assert bot.fetched == [300]


@pytest.mark.parametrize(
    ("bot", "permanent"),
    [
        (FakeBot(None, fetch_error=http_error(discord.NotFound, 404)), True),
        (FakeBot(FakeChannel(http_error(discord.NotFound, 404))), True),
        (FakeBot(FakeChannel(http_error(discord.HTTPException, 400))), True),
        (FakeBot(SimpleNamespace(id=1)), True),  # not a text channel
        (FakeBot(FakeChannel(http_error(discord.Forbidden, 403))), False),
        (FakeBot(FakeChannel(http_error(discord.DiscordServerError, 503))), False),
        (FakeBot(None, fetch_error=http_error(discord.Forbidden, 403)), False),
    ],
)
async def test_poster_error_mapping(bot: FakeBot, permanent: bool) -> None:
    poster = make_poster(bot)  # type: ignore[arg-type]
    if permanent:
        with pytest.raises(PermanentPostError):
            await poster(entry(), 300)
    else:
        with pytest.raises(discord.HTTPException):
            await poster(entry(), 300)
