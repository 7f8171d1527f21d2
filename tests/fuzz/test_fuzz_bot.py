"""Weird `/video` options and attachments through the real bot and the fake Discord.

Every interaction is acknowledged in time (never "the application did not respond"); each
ends either in an ephemeral refusal that says what to change (nothing public, nothing
charged) or in an admitted job (private summary, public status message). Nothing the bot
posts can ping @everyone/@here or a role.

The cases are a fixed list of known-nasty values plus examples drawn by hypothesis (more
with FUZZ_SCALE). Jobs are left in the simulator's queue (a long delay), so no clip is
rendered: what is tested here is the request path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fakes.discord_server import FakeFile
from tests.fuzz import budget, images
from tests.fuzz import strategies as s

CORPUS = images.corpus()
NASTY: list[dict[str, Any]] = [
    {"prompt": "a cat", "resolution": "²x720"},
    {"prompt": "a cat", "resolution": "9" * 5000 + "x720"},
    {"prompt": "a cat", "resolution": "1280 × 720"},
    {"prompt": "a cat", "resolution": "١٢٨٠x٧٢٠"},
    {"prompt": "a cat", "resolution": "-1280x-720"},
    {"prompt": "a cat", "resolution": "0x0"},
    {"prompt": "@everyone @here <@&1> <@1> look", "aspect_ratio": "9:16"},
    {"prompt": "```\n**bold** ||spoiler|| # heading\n```", "fps": 50},
    {"prompt": "\u202eevil\u200b\u200d\ufeff", "duration": 20},
    {"prompt": "\x00\x01\x1f control", "seed": 4294967295},
    {"prompt": "🎬" * 2000},
    {"prompt": "   padded   ", "provider": "nope"},
    {"prompt": "a cat", "provider": " simulator"},
    {"prompt": "a cat", "provider": "simulator", "audio": False, "duration": 1},
    {"prompt": "a cat", "image": FakeFile("x.png", CORPUS["png-RGB"][:100], "image/png")},
    {"prompt": "a cat", "image": FakeFile("x.gif", CORPUS["gif"], "image/gif")},
    {"prompt": "a cat", "image": FakeFile("bomb.png", images.png_with_size(90_000, 90_000))},
    {
        "prompt": "a cat",
        "first_frame": FakeFile("a.jpg", CORPUS["jpeg-CMYK"], "image/jpeg"),
        "last_frame": FakeFile("b.webp", CORPUS["webp-lossless"], "image/webp"),
    },
    {"prompt": "a cat", "last_frame": FakeFile("b.png", CORPUS["png-RGB"], "image/png")},
    {
        "prompt": "a cat",
        "image": FakeFile("a.png", CORPUS["png-RGBA"], "image/png"),
        "first_frame": FakeFile("b.png", CORPUS["png-RGB"], "image/png"),
    },
]


def utf8(text: str) -> str:
    return text.encode("utf-8", "ignore").decode("utf-8")


attachments = st.builds(
    lambda name, data: FakeFile(name, data, "image/png"),
    st.sampled_from(["in.png", "in.jpg", "in", "../../etc/passwd", "a b.webp"]),
    st.one_of(
        st.sampled_from(sorted(CORPUS)).map(CORPUS.__getitem__),
        st.binary(max_size=300),
        st.builds(lambda d, n: d[:n], st.sampled_from(list(CORPUS.values())), st.integers(0, 400)),
    ),
)
cases = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=2000).filter(lambda t: t.strip())},
    optional={
        # Discord's JSON is UTF-8: it cannot carry unpaired surrogates (nor can the fake).
        "resolution": s.resolution_texts.map(utf8).filter(lambda r: 0 < len(r) <= 100),
        "duration": st.integers(1, 20),
        "fps": st.sampled_from([24, 25, 30, 50]),
        "aspect_ratio": st.sampled_from(["16:9", "9:16", "1:1", "4:3", "3:4", "4:5"]),
        "seed": st.integers(0, 4294967295),
        "audio": st.booleans(),
        "provider": s.mostly(st.just("simulator"), st.text(max_size=20).map(utf8).filter(bool)),
        "image": attachments,
    },
)


def drawn_cases(count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def collect(case: dict[str, Any]) -> None:
        found.append(case)

    collect()
    return found


def short(case: dict[str, Any]) -> str:
    return ascii({k: v if not isinstance(v, str) else v[:40] for k, v in case.items()})


def is_refusal(text: str) -> bool:
    return not text.startswith("🎬")


async def test_weird_video_commands_are_answered(
    video_bot: Callable[..., Any], fake_discord: Any
) -> None:
    all_cases = NASTY + drawn_cases(12 * budget.SCALE)
    async with video_bot(
        simulator_delay_seconds=3600,  # jobs stay queued: no clips are rendered
        quota_seconds_per_day=86_400,
        max_active_jobs_per_member=50,
    ) as v:
        jobs_before = 0
        problems: list[str] = []
        for case in all_cases:
            try:
                inter = await v.command(case)  # asserts the acknowledgement came in time
            except AssertionError as exc:
                raise AssertionError(f"{short(case)}: {exc}") from None
            answer = await v.private(inter)
            jobs = await v.jobs()
            made = len(jobs) - jobs_before
            jobs_before = len(jobs)
            if is_refusal(answer.content):
                public = [m for m in inter.followups if not m.ephemeral]
                if public or made or "Something went wrong" in answer.content:
                    problems.append(f"{short(case)}: public={len(public)} jobs+={made} "
                                    f"answer={answer.content[:120]!r}")  # fmt: skip
            else:
                status = await v.status(inter)
                if made != 1 or f"Job {jobs[-1].id}" not in answer.content + status.content:
                    problems.append(f"{short(case)}: jobs+={made} answer={answer.content[:120]!r}")
        assert not problems, "\n".join(problems)
        print(
            f"{len(all_cases)} commands: {jobs_before} jobs, {len(all_cases) - jobs_before} refused"
        )
        posted = [
            m
            for channel in fake_discord.guilds[v.world.guild_id].channels
            for m in fake_discord.messages(channel, include_deleted=True)
        ]
        for interaction in fake_discord.interactions.values():
            posted += [m for m in (interaction.original, *interaction.followups) if m is not None]
        assert posted
        pings = [
            m.content[:80]
            for m in posted
            if m.pinged_everyone or m.pinged_role_ids or m.pinged_user_ids - {v.world.user_id}
        ]
        assert not pings, pings
