"""The configured secrets (bot token, provider keys) never leave the process through logs,
Discord messages, the database, files, reprs or exception texts.

One bot runs real flows against the fake Discord (canary token) and the fake ByteCompute and
Leonardo servers (canary keys): a clip from every provider, a refusal, a provider that
answers 401 and 500 with the key echoed in the error body, failed credential checks. Logs
are captured at DEBUG *without* the SecretFilter (which only guards the production handler),
so this proves the code never puts a secret in a log record in the first place.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.providers.base import Mode, NegotiatedRequest, ProviderError
from bot.providers.bytecompute import ByteComputeProvider
from bot.providers.leonardo import LeonardoProvider
from tests.e2e.conftest import image_file
from tests.fakes.bytecompute_server import FakeByteCompute
from tests.fakes.discord_server import FakeDiscord, FakeMessage
from tests.fakes.leonardo_server import FakeLeonardo
from tests.security.conftest import BYTECOMPUTE_CANARY, CANARIES, LEONARDO_CANARY


def echo(status: int, key: str) -> dict[str, Any]:
    """A provider error body that repeats the key it was sent (some gateways do)."""
    return {
        "n": 1,
        "status": status,
        "body": json.dumps({"error": {"type": "error", "message": f"bad key {key} for /v1"}}),
    }


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = []
    formatter = logging.Formatter()
    for record in caplog.records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    return texts


def discord_texts(fake: FakeDiscord) -> list[str]:
    """Everything the bot made Discord show: messages (channels, interactions), as JSON."""
    messages: list[FakeMessage] = []
    for guild in fake.guilds.values():
        for channel in guild.channels:
            messages += fake.messages(channel, include_deleted=True)
    for inter in fake.interactions.values():
        messages += [m for m in (inter.original, *inter.followups) if m is not None]
    assert messages
    out = []
    for message in messages:
        out.append(json.dumps(message.payload(), ensure_ascii=False))
        out += [a.data.decode("latin-1") for a in message.attachments]
    for inter in fake.interactions.values():
        out += [json.dumps(c.data, ensure_ascii=False, default=str) for c in inter.callbacks]
    return out


def database_texts(path: Path) -> list[str]:
    out = []
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):  # every column of every row
                out.append(repr(row))
    return out


def file_texts(folder: Path) -> list[str]:
    """Every file the bot wrote (database, WAL, inputs, clips), as raw bytes."""
    return [p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file()]


def leaks(texts: list[str]) -> list[str]:
    return [
        f"{secret[:12]}… in {text[:160]!r}"
        for text in texts
        for secret in CANARIES
        if secret in text
    ]


async def test_configured_secrets_never_leave_the_process(
    harness: Any,
    canary_discord: FakeDiscord,
    quick_first_poll: None,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with (
        FakeByteCompute(api_key=BYTECOMPUTE_CANARY, job_seconds=0.2) as bc,
        FakeLeonardo(api_key=LEONARDO_CANARY, job_seconds=0.2) as leo,
    ):
        settings = {
            "bytecompute_api_key": BYTECOMPUTE_CANARY,
            "bytecompute_base_url": bc.base_url,
            "leonardo_api_key": LEONARDO_CANARY,
            "leonardo_base_url": leo.rest_url,
            "simulator_enabled": True,
            "default_provider": "simulator",
            "quota_seconds_per_day": 3600,
            "max_active_jobs_per_member": 10,
        }
        async with harness(**settings) as v:
            # A clip from every provider.
            small = {"duration": 4, "resolution": "512x512"}
            inters = [
                await v.command({"prompt": "a lighthouse", "provider": "simulator", **small}),
                await v.command({"prompt": "a harbour", "provider": "bytecompute"}),
                await v.command(
                    {"prompt": "a heron", "provider": "leonardo"},
                    attachments={"image": image_file("heron.png", width=640, height=512)},
                ),
            ]
            for job_id, inter in enumerate(inters, start=1):
                assert f"Job {job_id}" in (await v.private(inter)).content
                await v.wait_job(job_id, "delivered", timeout=30)
            # The providers answer errors that repeat the key: 401 on a submit (the job
            # fails), 500s on polls (retried, then delivered).
            bc.fail_next(**echo(401, BYTECOMPUTE_CANARY), path_prefix="/v1/generate")
            await v.private(await v.command({"prompt": "a storm", "provider": "bytecompute"}))
            await v.wait_job(4, "failed", timeout=30)
            leo.fail_next(2, 500, echo(500, LEONARDO_CANARY)["body"], path_prefix="/api/rest/v1/g")
            await v.private(await v.command({"prompt": "a quiet bay", "provider": "leonardo"}))
            await v.wait_job(5, "delivered", timeout=30)
            # A refusal, and /jobs listing everything (failure reasons included).
            await v.private(await v.command({"prompt": "x", "resolution": "wide"}))
            jobs = await v.command(name="jobs")
            await jobs.wait_for_original(lambda m: bool(m.embeds))
            # Failed credential checks whose answers echo the key.
            bc.fail_next(**echo(401, BYTECOMPUTE_CANARY))
            leo.fail_next(**echo(403, LEONARDO_CANARY))
            for provider in v.bot.providers.values():
                result = await provider.check()
                texts += [result.detail, repr(result)]
            # What could print the settings or the providers.
            texts += [repr(v.bot.settings), str(v.bot.settings), v.bot.settings.model_dump_json()]
            texts += [repr(v.bot.providers), *(repr(p) for p in v.bot.providers.values())]
            failed = await v.job(4)  # the member is told, the admin reads the (scrubbed) log
            assert failed.failure_reason and "misconfigured" in failed.failure_reason
        texts += discord_texts(canary_discord)
        texts += database_texts(tmp_path / "data" / "bot.db")
        texts += file_texts(tmp_path / "data")
        texts += log_texts(caplog)
    assert any("rejected the API key" in t and "bad key ***" in t for t in texts), "no 401 path"
    assert not leaks(texts), leaks(texts)[:5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 502])
async def test_provider_errors_never_carry_the_key(status: int) -> None:
    """Typed errors from answers that echo the key (JSON, HTML and plain text)."""
    request = NegotiatedRequest(
        prompt="a cat",
        provider="bytecompute",
        model="Lightricks/LTX-2.3",
        mode=Mode.TEXT,
        duration=5,
        width=1920,
        height=1080,
        fps=25,
    )
    bodies = [
        json.dumps({"message": "key {key} refused"}),
        "<html><title>Denied {key}</title></html>",
        "Bearer {key}",
    ]
    for template in bodies:
        for kind, key in (("bytecompute", BYTECOMPUTE_CANARY), ("leonardo", LEONARDO_CANARY)):
            body = template.replace("{key}", key)

            def answer(request: httpx.Request, body: str = body) -> httpx.Response:
                return httpx.Response(status, text=body, headers={"retry-after": "1"})

            async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
                provider: Any = (
                    ByteComputeProvider(client, api_key=key, base_url="https://bc.test")
                    if kind == "bytecompute"
                    else LeonardoProvider(client, api_key=key, base_url="https://leo.test/api")
                )
                with pytest.raises(ProviderError) as info:
                    await provider.submit(request.model_copy(update={"provider": kind}))
            exc = info.value
            shown = [str(exc), repr(exc), exc.message, *map(str, exc.args)]
            assert not leaks(shown), shown
