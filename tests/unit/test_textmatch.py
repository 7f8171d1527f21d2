"""Prompt-rule matching: the evasion corpus, false positives, regex rules and safety."""

from __future__ import annotations

import asyncio
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import textmatch
from bot.textmatch import RegexSandbox, RegexTimeout, Rule, RuleError, RuleSet

TERMS = ["nsfw", "cunt", "ass", "god", "anal", "kill", "lolita", "blow job", "hell", "tit", "cum"]
RULES = RuleSet(Rule(i, term, False) for i, term in enumerate(TERMS, start=1))


def matched(prompt: str, rules: RuleSet = RULES) -> str | None:
    hit = rules.match_terms(prompt)
    return None if hit is None else hit.rule.pattern


# (prompt, the term it must hit) — evasions of each kind the folding claims to handle.
CAUGHT = [
    ("nsfw", "nsfw"),
    ("make it NSFW please", "nsfw"),
    ("Ⓝ-s-f-w", "nsfw"),  # circled letter + separators
    ("ⓝⓢⓕⓦ", "nsfw"),  # circled small letters
    ("n-s-f-w", "nsfw"),
    ("n.s.f.w", "nsfw"),
    ("n s f w", "nsfw"),
    ("n_s_f_w", "nsfw"),
    ("n/s/f/w!", "nsfw"),
    ("n * s * f * w", "nsfw"),
    ("ns-fw", "nsfw"),  # split by punctuation inside a word
    ("ns.fw", "nsfw"),
    ("ｎｓｆｗ", "nsfw"),  # fullwidth
    ("𝐧𝐬𝐟𝐰", "nsfw"),  # mathematical bold
    ("𝕟𝕤𝕗𝕨", "nsfw"),  # double-struck
    ("🄽🅂🄵🅆", "nsfw"),  # squared
    ("🅽🆂🅵🆆", "nsfw"),  # negative squared
    ("🇳🇸🇫🇼", "nsfw"),  # regional indicators
    ("⒩⒮⒡⒲", "nsfw"),  # parenthesized
    ("ɴꜱꜰᴡ", "nsfw"),  # small capitals
    ("nѕfw", "nsfw"),  # Cyrillic dze
    ("ΝЅFW", "nsfw"),  # Greek capital nu + Cyrillic capital dze
    ("n\u200bs\u200cf\u200dw", "nsfw"),  # zero-width space / non-joiner / joiner
    ("n\u00ads\u2060f\ufeffw", "nsfw"),  # soft hyphen, word joiner, BOM
    ("n\u3164sfw", "nsfw"),  # Hangul filler
    ("n̶s̶f̶w̶", "nsfw"),  # combining strike-through
    ("ńšfŵ", "nsfw"),  # accents
    ("N5FW", "nsfw"),  # leetspeak
    ("n$fw", "nsfw"),
    ("nsfws", "nsfw"),  # plural
    ("nssssfw", "nsfw"),  # stretched letter
    ("a CUNT", "cunt"),
    ("сunt", "cunt"),  # Cyrillic es
    ("c u n t", "cunt"),
    ("asses", "ass"),
    ("@$$", "ass"),
    ("4ss", "ass"),
    ("a s s", "ass"),
    ("God", "god"),
    ("g0d", "god"),
    ("ＧＯＤ", "god"),
    ("k1ll him", "kill"),  # 1 for i
    ("ki11", "kill"),  # 1 for l
    ("KİLL", "kill"),  # dotted capital I
    ("kiłł", "kill"),  # l with stroke
    ("1ol1ta", "lolita"),  # 1 for both l and i
    ("l0l1t4", "lolita"),
    ("a blow job", "blow job"),  # multi-word term
    ("blowjob", "blow job"),  # written as one word
    ("blow-jobs", "blow job"),
    ("BLOW   JOB", "blow job"),
    ("hell yeah", "hell"),
    ("h3ll", "hell"),
    ("anal", "anal"),
    ("a.n.a.l", "anal"),
    ("tits", "tit"),
    ("cum", "cum"),
]

# Prompts that must pass: words that merely contain a blocked word (Scunthorpe problem),
# near-misses, and ordinary prompts.
CLEAN = [
    "Scunthorpe United at dusk",
    "a class of students",
    "an assassin in the rain",
    "passage through the bass section",
    "good morning, sunshine",
    "a godly light",  # whole words only
    "analysis of canal boats",
    "an al pacino lookalike",  # "an al" must not become "anal"
    "skill tree",
    "killer whale",  # whole word: "killer" is not "kill"
    "kiln full of pottery",
    "hello shell",
    "title card with petition",
    "cucumber document in a circumstance",
    "a cat walking on the beach at sunset, 4k, 35mm",
    "1990s film grain",
    "3 d render of a 7 layer cake",
    "blow the candles, then the job is done",  # words apart
    "assessment",
    "a bass guitar",
    "gods of olympus",  # plural of god is caught... see below
]


@pytest.mark.parametrize(("prompt", "term"), CAUGHT)
def test_evasions_are_caught(prompt: str, term: str) -> None:
    assert matched(prompt) == term


@pytest.mark.parametrize("prompt", [p for p in CLEAN if p != "gods of olympus"])
def test_false_positives_are_avoided(prompt: str) -> None:
    assert matched(prompt) is None


def test_plural_of_a_term_is_caught() -> None:
    # The plural rule is deliberate: "gods" is caught by "god" (admins can remove the term).
    assert matched("gods of olympus") == "god"


def test_doubled_letter_is_not_a_stretch() -> None:
    # "god" must not hit "good"; three or more repeats count as stretching.
    assert matched("good") is None
    assert matched("gooood") == "god"


def test_hit_points_at_the_original_text() -> None:
    prompt = "a calm scene, then Ⓝ-s-f-w stuff"
    hit = RULES.match_terms(prompt)
    assert hit is not None
    assert prompt[hit.start : hit.end] == "Ⓝ-s-f-w"
    assert hit.excerpt(prompt) == "Ⓝ-s-f-w"


def test_term_validation() -> None:
    with pytest.raises(RuleError, match="at least two"):
        textmatch.term_words("x")
    with pytest.raises(RuleError, match="at least two"):
        textmatch.term_words("--- !")
    with pytest.raises(RuleError, match="at most"):
        textmatch.term_words("a" * 101)
    assert textmatch.term_key("N-S-F-W") == "nsfw"
    assert textmatch.term_key("Blow  Job") == "blow job"
    assert textmatch.term_key("ＢＬＯＷ job") == textmatch.term_key("blow job")


def test_fold_keeps_a_source_map() -> None:
    folded = textmatch.fold("Ａ\u200bé!")
    assert folded.text == "ae!"
    assert folded.source == (0, 2, 3)


# ----- property: random evasions of random terms are still caught ------------------------

WORDS = ["nsfw", "gore", "nudity", "swastika", "porn", "bloody", "naked", "hentai"]
PROPERTY_RULES = RuleSet(Rule(i, w, False) for i, w in enumerate(WORDS, start=1))
INVISIBLES = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff"]
SEPARATORS = ["-", ".", " ", "_", "*", "/", " - "]


def _disguise(word: str, draw: st.DrawFn) -> str:
    style = draw(st.sampled_from(["case", "invisible", "separator", "fullwidth", "accent"]))
    if style == "case":
        return "".join(c.upper() if draw(st.booleans()) else c for c in word)
    if style == "invisible":
        return "".join(c + draw(st.sampled_from(INVISIBLES)) for c in word)
    if style == "separator":
        return draw(st.sampled_from(SEPARATORS)).join(word)
    if style == "fullwidth":
        return "".join(chr(ord(c) - 0x61 + 0xFF41) for c in word)
    return "".join(unicodedata.normalize("NFC", c + "\u0301") for c in word)


@st.composite
def disguised(draw: st.DrawFn) -> tuple[str, str]:
    word = draw(st.sampled_from(WORDS))
    before = draw(st.sampled_from(["", "a photo of ", "cinematic, "]))
    after = draw(st.sampled_from(["", " at night", "!", ", 4k"]))
    return word, before + _disguise(word, draw) + after


@settings(max_examples=300, deadline=None)
@given(disguised())
def test_property_disguised_terms_are_caught(case: tuple[str, str]) -> None:
    word, prompt = case
    hit = PROPERTY_RULES.match_terms(prompt)
    assert hit is not None, prompt
    assert hit.rule.pattern == word


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_property_fold_and_match_never_fail(text: str) -> None:
    folded = textmatch.fold(text)
    assert len(folded.text) == len(folded.source)
    assert all(0 <= i < len(text) for i in folded.source)
    hit = RULES.match_terms(text)
    if hit is not None:
        assert 0 <= hit.start < hit.end <= len(text)


# ----- regex rules -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox():
    box = RegexSandbox()
    yield box
    box.close()


async def test_regex_rules_search_folded_text(sandbox: RegexSandbox) -> None:
    rules = RuleSet([Rule(7, r"n+s+f+w+", True), Rule(8, r"\bkill(s|ed|ing)?\b", True)])
    for prompt in ["NNSFW", "ｎｓｆｗ", "n-s-f-w", "n\u200bsfw", "N5FW", "hello nsfwwww"]:
        hit = await rules.match(prompt, sandbox=sandbox)
        assert hit is not None and hit.rule.id == 7, prompt
    hit = await rules.match("she was KILLED off", sandbox=sandbox)
    assert hit is not None and hit.rule.id == 8
    assert "she was KILLED off"[hit.start : hit.end] == "KILLED"
    assert await rules.match("a skilled painter", sandbox=sandbox) is None
    assert await rules.match("a calm lake", sandbox=sandbox) is None


async def test_terms_are_checked_before_regexes(sandbox: RegexSandbox) -> None:
    rules = RuleSet([Rule(1, "nsfw", False), Rule(2, r"nsfw", True)])
    hit = await rules.match("nsfw", sandbox=sandbox)
    assert hit is not None and hit.rule.id == 1


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(", "invalid"),
        ("[a-", "invalid"),
        ("a{2,1}", "invalid"),
        ("(a+)+$", "Repeating a group"),
        ("(a*)*b", "Repeating a group"),
        ("(x|xy)*z", "Repeating a group"),
        ("(?:a|ab)+$", "Repeating a group"),
        (r"(\w+\s?)+$", "Repeating a group"),
        (r"(a)\1", "Backreferences"),
        ("a{5000}", "Counted repeats"),
        ("a*", "empty"),
        ("x?", "empty"),
        (r"\b", "empty"),
        ("(?=a)", "empty"),
        ("a" * 201, "at most 200"),
        ("   ", "Give the regular expression"),
    ],
)
async def test_bad_regexes_are_rejected(pattern: str, message: str, sandbox) -> None:
    with pytest.raises(RuleError, match=message):
        await textmatch.check_regex(pattern, sandbox=sandbox)


async def test_polynomial_blowup_is_rejected_by_the_timed_probe(sandbox) -> None:
    # Statically harmless-looking, but cubic: 13 s on 5,000 "a"s in-process.
    started = time.monotonic()
    for pattern in [r"a*a*a*b", r"x(?=a*a*a*b)"]:
        textmatch.check_regex_static(pattern)  # passes the static checks ...
        with pytest.raises(RuleError, match="too slow"):  # ... but not the probe
            await textmatch.check_regex(pattern, sandbox=sandbox)
    assert time.monotonic() - started < 2 * (textmatch.PROBE_TIMEOUT_S + 1.0)


async def test_good_regexes_are_accepted(sandbox) -> None:
    for pattern in [r"\bkill(s|ed|ing)?\b", r"n+s+f+w+", r"gore|blood", r"[0-9]{3}-[0-9]{4}"]:
        assert await textmatch.check_regex(f"  {pattern} ", sandbox=sandbox) == pattern


async def test_match_time_limit_kills_a_runaway_regex_without_freezing_the_loop() -> None:
    # A rule stored before validation existed: matching must still be bounded.
    box = RegexSandbox()
    try:
        rules = RuleSet([Rule(1, r"(a+)+$", True)])
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        with pytest.raises(RegexTimeout):
            await rules.match("a" * 40 + "!", sandbox=box, time_limit=0.5)
        elapsed = time.monotonic() - started
        task.cancel()
        assert 0.45 < elapsed < 3.0
        assert ticks >= 10  # the event loop kept running meanwhile
        assert box.pid is None  # the runaway helper was killed
        # The next search starts a fresh helper and works.
        hit = await rules.match("aaa", sandbox=box, time_limit=5.0)
        assert hit is not None
        assert box.restarts == 2
    finally:
        box.close()


async def test_sandbox_recovers_after_its_helper_exits(sandbox: RegexSandbox) -> None:
    rules = RuleSet([Rule(1, "abc", True)])
    assert await rules.match("xabcx", sandbox=sandbox) is not None
    assert sandbox._proc is not None
    sandbox._proc.kill()
    sandbox._proc.wait()
    assert await rules.match("xabcx", sandbox=sandbox) is not None


async def test_idle_helper_exits_by_itself() -> None:
    box = RegexSandbox(idle_exit_s=0.2)
    try:
        await box.search(["a"], ["a"], time_limit=5.0)
        proc = box._proc
        assert proc is not None
        await asyncio.to_thread(proc.wait, 5.0)
        assert proc.returncode == 0
        result = await box.search(["b"], ["abc"], time_limit=5.0)
        assert result.hit == (0, 0, 1, 2)
    finally:
        box.close()


# ----- speed of the in-process term matcher ----------------------------------------------


def test_term_matching_is_fast_on_long_prompts() -> None:
    rules = RuleSet(Rule(i, f"blockedword{i}", False) for i in range(500))
    prompts = [
        "a b " * 1250,  # 5,000 characters of single letters (the spaced-letter join path)
        "lorem ipsum dolor sit amet " * 185,
        "x" * 5000,
        "n-s-f-w " * 625,
    ]
    started = time.perf_counter()
    for prompt in prompts:
        assert rules.match_terms(prompt) is None
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"term matching took {elapsed:.3f} s for 4 long prompts"
