"""The member-facing wording of a job (cogs/ui/text.py): limits, inert echoes, plain words."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.providers.base import Adjustment, Mode, NegotiatedRequest
from cogs.ui import text as render
from cogs.video.delivery import smaller_upload_limit

MiB = 1024 * 1024


def request(prompt: str = "a cat", **kw) -> NegotiatedRequest:
    values = dict(
        prompt=prompt,
        provider="simulator",
        model="ltx-2.3-sim",
        mode=Mode.TEXT,
        duration=5,
        width=1280,
        height=720,
        fps=25,
        seed=7,
        cost_usd=0.3,
    )
    values.update(kw)
    return NegotiatedRequest(**values)


def test_echo_neutralises_mentions_and_markdown() -> None:
    text = render.echo_prompt(
        "@everyone @here <@&123456789012345678> <@!223456789012345678> **bold** `x`"
    )
    assert "@everyone" not in text and "@here" not in text
    assert "<@&123456789012345678>" not in text and "<@!223456789012345678>" not in text
    assert "\\*\\*bold\\*\\*" in text and "\\`x\\`" in text


def test_adjustments_in_plain_words() -> None:
    adjs = [
        Adjustment(field="fps", requested=50, actual=25, reason="needs too much GPU time"),
        Adjustment(field="resolution", requested="600x400", actual="768x512"),
        Adjustment(field="duration", requested=7, actual=6, reason="Leonardo makes 6–20 s"),
        Adjustment(field="seed", requested=5, actual=None, reason="no seeds"),
    ]
    line = render.adjustments_line(adjs)
    assert line == (
        "Adjusted: frame rate 50 fps → 25 fps (needs too much GPU time); "
        "resolution 600×400 → 768×512; duration 7 s → 6 s (Leonardo makes 6–20 s); "
        "seed 5 → none (no seeds)"
    )
    assert render.adjustments_line([]) is None


def test_summary_states_settings_cost_and_allowance() -> None:
    req = request(adjustments=[Adjustment(field="fps", requested=24, actual=25)])
    text = render.summary(req, job_id=12, allowance_left=55.4)
    first = text.splitlines()[0]
    for part in ("Job 12", "text-to-video", "5 s", "1280×720", "25 fps", "seed 7", "$0.30"):
        assert part in first
    assert "55 s of your allowance left" in first
    assert "frame rate 24 fps → 25 fps" in text
    assert "unlimited allowance" in render.summary(req, job_id=1, allowance_left=None)


def test_public_header_has_no_allowance_and_pings_nobody_by_itself() -> None:
    header = render.public_header(request("hi @everyone"), job_id=3, user_id=99)
    assert "<@99>" in header and "allowance" not in header and "@everyone" not in header


def test_progress_lines() -> None:
    assert render.progress_line(state="queued", elapsed_s=3, position=2) == (
        "⏳ Queued — position 2 · 3s elapsed"
    )
    line = render.progress_line(state="rendering", elapsed_s=75, progress=0.4, eta_s=30)
    assert line == "⚙️ Rendering · 1m 15s elapsed · 40% · about 30s left"
    assert "%" not in render.progress_line(state="rendering", elapsed_s=1, progress=1.0)
    assert render.fmt_duration(3725) == "1h 02m"


def test_result_and_endings() -> None:
    text = render.result_text(
        request("a <@123456789012345678> cat"),
        user_id=5,
        job_id=9,
        cost_usd=0.25,
        reencoded=True,
        seconds=5,
    )
    assert text.startswith("<@5> your video is ready (job 9).")
    assert "<@123456789012345678>" not in text and "$0.25" in text and "Re-encoded" in text
    longer = render.result_text(
        request(), user_id=5, job_id=9, cost_usd=0.25, reencoded=False, seconds=8
    )
    assert "8 s" in longer and "Re-encoded" not in longer

    ended = render.ended_text(job_id=4, outcome="cancelled", reason="stopped.", refunded=True)
    assert ended == (
        "🛑 Job 4 was cancelled: stopped. Nothing was charged: its seconds are back in the "
        "allowance."
    )
    assert render.ended_text(job_id=4, outcome="failed", reason="", refunded=False) == (
        "❌ Job 4 failed."
    )
    private = render.ended_summary(request(), job_id=4, outcome="expired", allowance_left=60)
    assert "⌛" in private and "60 s of your allowance left" in private


def test_missing_permissions_are_named() -> None:
    text = render.missing_permissions_text(["Attach Files", "Embed Links"])
    assert "**Attach Files**, **Embed Links**" in text


def test_smaller_upload_limit_never_repeats_a_size() -> None:
    assert smaller_upload_limit(30 * MiB) == 25 * MiB
    assert smaller_upload_limit(12 * MiB) == 10 * MiB
    assert smaller_upload_limit(10 * MiB) == 5 * MiB
    assert smaller_upload_limit(181_000) == 90_500
    size = 120 * MiB
    seen = set()
    for _ in range(10):
        size = smaller_upload_limit(size)
        assert size not in seen
        seen.add(size)


mentionish = st.sampled_from(
    ["@everyone", "@here", "<@&123456789012345678>", "<@123456789012345678>", "*", "`"]
)


@settings(max_examples=60, deadline=None)
@given(
    prompt=st.lists(st.one_of(st.text(min_size=1, max_size=40), mentionish), max_size=300).map(
        "".join
    ),
    adjustments=st.lists(
        st.builds(
            Adjustment,
            field=st.sampled_from(["fps", "duration", "resolution", "aspect_ratio"]),
            requested=st.text(max_size=30),
            actual=st.text(max_size=30),
            reason=st.text(max_size=300),
        ),
        max_size=6,
    ),
)
def test_every_message_respects_discord_limits_and_stays_inert(prompt, adjustments) -> None:
    req = request(prompt.strip() or "x", adjustments=adjustments)
    texts = [
        render.summary(req, job_id=123456, allowance_left=1e6),
        render.public_header(req, job_id=123456, user_id=2**63),
        render.result_text(req, user_id=2**63, job_id=1, cost_usd=123.4, reencoded=True),
        render.status_text(render.public_header(req, job_id=1, user_id=1), "⏳ Queued"),
        render.ended_text(job_id=1, outcome="failed", reason=prompt, refunded=True),
    ]
    for text in texts:
        assert len(text) <= render.CONTENT_LIMIT
        body = text.split("\n", 1)[-1]
        assert "@everyone" not in body and "@here" not in body and "<@&" not in body
        assert "<@123456789012345678>" not in body
