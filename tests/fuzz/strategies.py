"""Hypothesis strategies for what members type and what providers answer."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

# Digits that `str.isdigit()` accepts but `int()` does not (superscripts, circled digits),
# decimal digits of other scripts (int() reads them), fullwidth digits, and lookalikes.
ODD_DIGITS = "²³¹⁰①⑳٠١٢٣٤٥٦٧٨٩۰۱۲０１２３９𝟏𝟗"
SEPARATORS = ("x", "X", "×", " x ", "*", ":", "", "xx", " ", "х", "\u00a0x\u00a0")
CONTROL = "".join(chr(c) for c in range(0, 32)) + "\x7f\u200b\u200e\u202e\ufeff"

# Text as Discord might deliver it: any code point including controls and lone surrogates.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
nasty_text = st.one_of(
    any_text,
    st.text(st.sampled_from(CONTROL + ODD_DIGITS + " x×:@#`*_~|<>&"), max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "\n\t ",
            "@everyone",
            "<@&123>",
            "'); DROP TABLE jobs; --",
            "${jndi:ldap://x}",
            "\x00",
            "\ud800",
            "🎬" * 10,
        ]
    ),
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], share: int = 75) -> Any:
    """`good` in about `share` % of the examples, else `bad`."""
    return st.integers(0, 99).flatmap(lambda n: good if n < share else bad)


def _number_text(digits: str) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(digits), min_size=0, max_size=6)


number_text = st.one_of(
    st.integers(-100, 100_000).map(str),
    _number_text(string.digits),
    _number_text(ODD_DIGITS + string.digits),
    st.integers(4000, 6000).map(lambda n: "9" * n),  # past int()'s 4,300-digit limit
    st.sampled_from(["0", "00", "-0", "+720", "1e3", "7.5", "nan", "inf", "0x10", "1_000"]),
)

resolution_texts = st.one_of(
    st.builds(
        lambda w, sep, h, pad: f"{pad}{w}{sep}{h}{pad}",
        number_text,
        st.sampled_from(SEPARATORS),
        number_text,
        st.sampled_from(["", " ", "\t", "\u3000"]),
    ),
    st.builds(lambda w, h: f"{w}x{h}", st.integers(16, 8192), st.integers(16, 8192)),
    st.sampled_from(["1280x720", "1920×1080", "512 x 512", "720X1280", "3840x2160", "16x16"]),
    nasty_text,
)
resolutions = st.one_of(st.none(), resolution_texts)

aspect_ratios = st.one_of(
    st.none(),
    st.sampled_from(["16:9", "9:16", "1:1", "4:3", "3:4", "4:5", "21:9", "2:1", "1:100"]),
    st.builds(lambda a, b: f"{a}:{b}", number_text, number_text),
    nasty_text,
)

prompts = st.one_of(
    st.sampled_from(["a cat", "  a red fox in the snow  ", "@everyone look <@&1> <#2> **x**"]),
    nasty_text,
    st.text(min_size=1, max_size=200),
    st.builds(lambda ch, n: ch * n, st.characters(codec="utf-8"), st.integers(0, 6000)),
    st.builds(lambda s: s + "\x00" + s, st.text(max_size=20)),
)

big_ints = st.one_of(
    st.none(),
    st.integers(1, 60),
    st.integers(-3, 130),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31, 2**32 - 1, 2**32, 2**63, -(2**63)]),
)

provider_names = st.one_of(
    st.none(),
    st.sampled_from(["simulator", "bytecompute", "leonardo", "leonardo-pro"]),
    st.sampled_from(["simulator", "bytecompute", "leonardo", "Simulator", " leonardo", ""]),
    nasty_text,
)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, biased towards the keys and words the providers use."""
    keys = st.one_of(
        st.sampled_from(
            [
                "id",
                "job_id",
                "jobId",
                "job",
                "status",
                "state",
                "adjustments",
                "progress",
                "eta",
                "eta_seconds",
                "error",
                "message",
                "reason",
                "failure_reason",
                "url",
                "result",
                "video_url",
                "download_url",
                "field",
                "parameter",
                "from",
                "to",
                "requested",
                "actual",
                "generationId",
                "generation_id",
                "generate",
                "cost",
                "amount",
                "unit",
                "apiCreditCost",
                "generations_by_pk",
                "generated_images",
                "generated_videos",
                "motionMP4URL",
                "failureReason",
                "uploadInitImage",
                "fields",
                "key",
                "user_details",
                "apiConcurrencySlots",
                "type",
                "code",
                "detail",
            ]
        ),
        st.text(max_size=8),
    )
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(
            [
                "completed",
                "COMPLETE",
                "FAILED",
                "PENDING",
                "failed",
                "running",
                "queued",
                "expired",
                "cancelled",
                "DOLLARS",
                "CREDITS",
                "50%",
                "1280x720",
                "http://127.0.0.1:1/x.mp4",
                "https://cdn.example/v.mp4",
                "https://[::1/x.mp4",
                "http://exa mple.com/\x00.mp4",
                "https://10.0.0.1/a.mp4",
                "",
                "{}",
                '{"a": 1}',
                "not json",
            ]
        ),
        st.text(max_size=12),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(keys, children, max_size=5),
        ),
        max_leaves=max_leaves,
    )
