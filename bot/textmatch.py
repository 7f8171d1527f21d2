r"""Prompt-rule matching: blocked terms (whole words) and admin regular expressions.

Normalisation (`fold`) works character by character and remembers, for every folded
character, where it came from in the original text, so a hit can be shown to the member.
It removes invisible characters (zero-width, format and other "empty" characters), applies
NFKD (fullwidth, mathematical, circled/squared letters → plain letters; accents split off)
and drops combining marks, maps common lookalikes (Cyrillic/Greek/small capitals/regional
indicator letters) to Latin, folds case and, for word rules, simple leetspeak.

**Term rules** are matched on words, never inside words: "cunt" does not hit "Scunthorpe",
"ass" does not hit "class". A word also matches with a plural ending (-s, -es) and with
letters stretched to three or more ("fuuuck"; a doubled letter is left alone so that "god"
does not hit "good"). Letters spaced out with separators ("n-s-f-w", "n.s.f.w",
"n s f w") and words split by punctuation ("ns-fw") are joined before matching. A term with
several words ("blow job") matches those words in a row, or written as one word. In
leetspeak "1" may stand for "i" or "l"; every other digit/symbol has one meaning
(0→o 3→e 4→a 5→s 7→t @→a $→s).

**Regex rules** are searched (anywhere, case-insensitive) in the folded text, its leetspeak
form and the form with spaced-out letters joined. Python's `re` has no timeout and holds the
GIL while it backtracks (a worker *thread* cannot be interrupted and freezes the event loop
too), so:

1. at add time a pattern is rejected when it does not compile, is longer than
   `MAX_REGEX_CHARS`, uses backreferences, repeats a group that itself repeats or has
   alternatives (`(a+)+`, `(a|aa)*`: exponential backtracking), has huge counted repeats,
   or can match an empty string (it would block every prompt);
2. it is then timed against adversarial probe texts built from its own characters (runs of
   200, 700 and 2,000 characters, with and without a failing end or a prefix) in a helper
   process (`RegexSandbox`) that is killed when it overruns: polynomial blow-ups like
   `a*a*b` (13 s on 5,000 "a"s) are rejected, quadratic `\w*word\w*` is accepted;
3. at match time regexes run in that same helper process with a hard timeout; when it
   overruns the process is killed and restarted, and the prompt is refused (fail closed).
   Term rules (the usual case) never need the helper and are matched in-process in linear
   time with a dictionary index.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

MAX_TERM_CHARS = 100
MAX_TERM_WORDS = 8
MIN_TERM_ALNUM = 2
MAX_REGEX_CHARS = 200
MAX_COUNTED_REPEAT = 1000
# Probes: 2,000-character adversarial texts. A quadratic pattern (`.*foo.*bar`,
# `\w*porn\w*`) takes ~20 ms on one and is accepted (at worst ~0.2 s on a hostile
# 5,000-character prompt, well inside the match-time limit); cubic or exponential ones take
# seconds and are rejected.
PROBE_TEXT_CHARS = 2000
PROBE_SIZES = (200, 700, PROBE_TEXT_CHARS)
PROBE_TIMEOUT_S = 3.0  # whole probe batch, hard (process killed)
PROBE_MAX_SINGLE_S = 0.25  # slowest single probe search allowed
MATCH_TIMEOUT_S = 2.0  # all regexes of a guild on one prompt, hard (process killed)
REGEX_FLAGS = re.IGNORECASE
MAX_FOLD_EXPANSION = 4  # characters a single input character may fold into

# ----- normalisation ---------------------------------------------------------------------

# Characters that render as nothing (or as blank) but are letters/symbols, not format chars.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u17b4\u17b5\u2800")
_BLANK = frozenset("\u2800")  # braille blank: looks like a space

_LOOKALIKES: dict[str, str] = {
    # Cyrillic capitals and small letters that look Latin
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ү": "Y",
    "Һ": "H", "Ӏ": "I", "Ԛ": "Q", "Ԝ": "W", "Ѵ": "V", "Ь": "b",
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ү": "y",
    "һ": "h", "ӏ": "l", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ѵ": "v", "ь": "b", "п": "n",
    "г": "r",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u",
    "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c",
    "ϳ": "j",
    # Latin letters without a decomposition, small capitals, currency lookalikes
    "ı": "i", "ȷ": "j", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D",
    "ð": "d", "ħ": "h", "ŧ": "t", "ƀ": "b", "ɨ": "i", "ʉ": "u", "æ": "ae", "Æ": "AE",
    "œ": "oe", "Œ": "OE", "ɑ": "a", "ɡ": "g", "ʏ": "y", "ɪ": "i", "ʟ": "l", "ɴ": "n",
    "ʀ": "r", "ʙ": "b", "ʜ": "h", "ɢ": "g", "ꜱ": "s", "ꜰ": "f", "ᴀ": "a", "ᴄ": "c",
    "ᴅ": "d", "ᴇ": "e", "ᴊ": "j", "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ᴛ": "t",
    "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "€": "e", "¢": "c",
}  # fmt: skip
for _offset in range(26):
    _letter = chr(ord("a") + _offset)
    _LOOKALIKES[chr(0x1F1E6 + _offset)] = _letter  # regional indicator 🇦..🇿
    _LOOKALIKES[chr(0x1F150 + _offset)] = _letter  # negative circled 🅐..🅩
    _LOOKALIKES[chr(0x1F170 + _offset)] = _letter  # negative squared 🅰..🆉

# "1" stays "1" in folded text: it stands for either "i" or "l" (see `_same`).
_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
AMBIGUOUS_ONE = "1"


def _strip_marks(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Mn", "Me"))


def _lookalikes(text: str) -> str:
    return "".join(_LOOKALIKES.get(ch, ch) for ch in text)


@lru_cache(maxsize=8192)
def fold_char(ch: str, leet: bool) -> str:
    """What one character folds to: "" (invisible), " " (blank) or lowercase text."""
    if ch in _BLANK or ch.isspace():
        return " "
    category = unicodedata.category(ch)
    if ch in _INVISIBLE or category in ("Mn", "Me", "Cf", "Cc", "Cs", "Co", "Cn"):
        return ""
    out = _lookalikes(ch)
    out = _lookalikes(_strip_marks(unicodedata.normalize("NFKD", out)))
    out = _lookalikes(_strip_marks(unicodedata.normalize("NFKD", out.casefold())))
    if leet:
        out = "".join(_LEET.get(c, c) for c in out)
    out = "".join(c for c in out if c not in _INVISIBLE)
    if any(c.isspace() for c in out):
        out = " ".join(out.split()) or " "
    return out[:MAX_FOLD_EXPANSION]


@dataclass(frozen=True)
class Folded:
    """Folded text plus, for each of its characters, the index of the source character."""

    text: str
    source: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The source span of folded characters `start:end` (end exclusive)."""
        if not self.source:
            return 0, 0
        start = min(max(start, 0), len(self.source) - 1)
        last = min(max(end - 1, start), len(self.source) - 1)
        return self.source[start], self.source[last] + 1


def fold(text: str, *, leet: bool = True) -> Folded:
    chars: list[str] = []
    source: list[int] = []
    for index, ch in enumerate(text):
        for out in fold_char(ch, leet):
            chars.append(out)
            source.append(index)
    return Folded("".join(chars), tuple(source))


# ----- words -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # folded-text span
    end: int


def alnum_tokens(folded: str) -> list[Token]:
    tokens: list[Token] = []
    start = -1
    for i, ch in enumerate(folded):
        if ch.isalnum():
            if start < 0:
                start = i
        elif start >= 0:
            tokens.append(Token(folded[start:i], start, i))
            start = -1
    if start >= 0:
        tokens.append(Token(folded[start:], start, len(folded)))
    return tokens


def _merge(tokens: Sequence[Token]) -> Token:
    return Token("".join(t.text for t in tokens), tokens[0].start, tokens[-1].end)


def chunk_tokens(folded: str) -> list[Token]:
    """One token per whitespace-separated chunk, punctuation inside it removed ("ns-fw")."""
    out: list[Token] = []
    group: list[Token] = []
    for token in alnum_tokens(folded):
        if group and not any(c.isspace() for c in folded[group[-1].end : token.start]):
            group.append(token)
            continue
        if group:
            out.append(_merge(group))
        group = [token]
    if group:
        out.append(_merge(group))
    return out


def spaced_tokens(tokens: Sequence[Token]) -> list[Token]:
    """Join runs of two or more single-character tokens: "n s f w" → "nsfw"."""
    out: list[Token] = []
    run: list[Token] = []
    for token in [*tokens, None]:
        if token is not None and len(token.text) == 1:
            run.append(token)
            continue
        if len(run) >= 2:
            out.append(_merge(run))
        else:
            out.extend(run)
        run = []
        if token is not None:
            out.append(token)
    return out


def word_views(folded: str) -> list[list[Token]]:
    """The distinct token sequences a prompt is checked as."""
    plain = alnum_tokens(folded)
    views = [plain, chunk_tokens(folded), spaced_tokens(plain)]
    distinct: list[list[Token]] = []
    seen: set[tuple[str, ...]] = set()
    for view in views:
        key = tuple(t.text for t in view)
        if key not in seen:
            seen.add(key)
            distinct.append(view)
    return distinct


Runs = tuple[tuple[str, int], ...]


def runs(word: str) -> Runs:
    out: list[tuple[str, int]] = []
    for ch in word:
        if out and out[-1][0] == ch:
            out[-1] = (ch, out[-1][1] + 1)
        else:
            out.append((ch, 1))
    return tuple(out)


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    return (a == AMBIGUOUS_ONE and b in "il") or (b == AMBIGUOUS_ONE and a in "il")


def runs_match(word: Runs, rule: Runs) -> bool:
    """Same letters in the same order; a single letter may be stretched to 3+ ("fuuuck"),
    a doubled one to 2+; "god" does not match "good"."""
    if len(word) != len(rule):
        return False
    for (wc, wn), (rc, rn) in zip(word, rule, strict=True):
        if not _same(wc, rc):
            return False
        if rn == 1:
            if wn != 1 and wn < 3:
                return False
        elif wn < rn:
            return False
    return True


def skeleton(word: str) -> str:
    """Index key: i/l/1 merged, repeated letters squeezed (over-approximates `runs_match`)."""
    merged = word.replace("l", "i").replace(AMBIGUOUS_ONE, "i")
    return "".join(ch for ch, _ in runs(merged))


def _word_forms(word: str) -> list[str]:
    """The word and the word without a plural ending."""
    forms = [word]
    if len(word) > 2 and word.endswith("s"):
        forms.append(word[:-1])
        if len(word) > 3 and word.endswith("es"):
            forms.append(word[:-2])
    return forms


# ----- rules -----------------------------------------------------------------------------


class RuleError(ValueError):
    """A blocked term or regex that cannot be used; `message` says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Rule:
    id: int
    pattern: str
    is_regex: bool


@dataclass(frozen=True)
class Hit:
    """A rule that matched, and the span of the original prompt it matched."""

    rule: Rule
    start: int
    end: int

    def excerpt(self, text: str, limit: int = 40) -> str:
        piece = " ".join(text[self.start : self.end].split())
        return piece if len(piece) <= limit else piece[: limit - 1] + "…"


@dataclass(frozen=True)
class _TermWords:
    rule: Rule
    words: tuple[Runs, ...]


def term_words(term: str) -> list[str]:
    """The folded words of a term (raises RuleError when it cannot be a term)."""
    text = term.strip()
    if not text:
        raise RuleError("Give the term to block.")
    if len(text) > MAX_TERM_CHARS:
        raise RuleError(f"Blocked terms can be at most {MAX_TERM_CHARS} characters long.")
    words = [t.text for t in spaced_tokens(alnum_tokens(fold(text).text))]
    if sum(len(w) for w in words) < MIN_TERM_ALNUM:
        raise RuleError(
            "A blocked term needs at least two letters or digits (a single letter would block "
            "almost every prompt)."
        )
    if len(words) > MAX_TERM_WORDS:
        raise RuleError(f"A blocked term can have at most {MAX_TERM_WORDS} words.")
    return words


def term_key(term: str) -> str:
    """Two terms with the same key block exactly the same prompts."""
    return " ".join(term_words(term))


class RuleSet:
    """The compiled rules of one guild. Build it once per set of rules (it is immutable)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._index: dict[str, list[_TermWords]] = {}
        self.regexes: list[Rule] = []
        for rule in rules:
            if rule.is_regex:
                try:
                    re.compile(rule.pattern, REGEX_FLAGS)
                except re.error:
                    log.warning("skipping blocked regex %d: it does not compile", rule.id)
                    continue
                self.regexes.append(rule)
                continue
            try:
                words = term_words(rule.pattern)
            except RuleError:
                log.warning("skipping blocked term %d: not a usable term", rule.id)
                continue
            self._add(rule, tuple(runs(w) for w in words))
            if len(words) > 1:  # "blow job" also as "blowjob"
                self._add(rule, (runs("".join(words)),))

    def _add(self, rule: Rule, words: tuple[Runs, ...]) -> None:
        key = skeleton("".join(ch * n for ch, n in words[0]))
        self._index.setdefault(key, []).append(_TermWords(rule, words))

    @property
    def empty(self) -> bool:
        return not self._index and not self.regexes

    def match_terms(self, prompt: str) -> Hit | None:
        """In-process, linear: the first term rule hit, or None."""
        if not self._index:
            return None
        folded = fold(prompt)
        for view in word_views(folded.text):
            for i, token in enumerate(view):
                for form_i, form in enumerate(_word_forms(token.text)):
                    for entry in self._index.get(skeleton(form), ()):
                        if self._matches_at(entry, view, i, plural_form=form_i > 0):
                            end = view[i + len(entry.words) - 1].end
                            start, stop = folded.span(token.start, end)
                            return Hit(entry.rule, start, stop)
        return None

    @staticmethod
    def _matches_at(entry: _TermWords, view: Sequence[Token], i: int, *, plural_form: bool) -> bool:
        n = len(entry.words)
        if i + n > len(view):
            return False
        if plural_form and n > 1:
            return False  # a plural ending only counts on a term's last word
        for j, rule_word in enumerate(entry.words):
            text = view[i + j].text
            last = j == n - 1
            candidates = _word_forms(text) if last else [text]
            if not any(runs_match(runs(c), rule_word) for c in candidates):
                return False
        return True

    async def match(
        self,
        prompt: str,
        *,
        sandbox: RegexSandbox | None = None,
        time_limit: float = MATCH_TIMEOUT_S,
    ) -> Hit | None:
        """Term rules in-process, then regex rules in the sandbox (raises RegexTimeout)."""
        hit = self.match_terms(prompt)
        if hit is not None or not self.regexes:
            return hit
        texts, maps = regex_texts(prompt)
        box = sandbox or default_sandbox()
        result = await box.search([r.pattern for r in self.regexes], texts, time_limit=time_limit)
        if result.hit is None:
            return None
        rule_i, text_i, start, end = result.hit
        start, stop = maps[text_i].span(start, max(end, start + 1))
        return Hit(self.regexes[rule_i], start, stop)


def regex_texts(prompt: str) -> tuple[list[str], list[Folded]]:
    """The texts regex rules are searched in, each with its map back to the prompt."""
    plain = fold(prompt, leet=False)
    leet = fold(prompt)
    forms = [plain, _replace(leet, AMBIGUOUS_ONE, "i"), _replace(leet, AMBIGUOUS_ONE, "l")]
    tokens = spaced_tokens(alnum_tokens(leet.text))
    joined_chars: list[str] = []
    joined_source: list[int] = []
    for token in tokens:
        if joined_chars:
            joined_chars.append(" ")
            joined_source.append(leet.source[token.start - 1] if token.start else 0)
        joined_chars.extend(token.text.replace(AMBIGUOUS_ONE, "i"))
        joined_source.extend(leet.source[token.start : token.end])
    forms.append(Folded("".join(joined_chars), tuple(joined_source)))
    texts: list[str] = []
    maps: list[Folded] = []
    for form in forms:
        if form.text not in texts:
            texts.append(form.text)
            maps.append(form)
    return texts, maps


def _replace(folded: Folded, old: str, new: str) -> Folded:
    return Folded(folded.text.replace(old, new), folded.source)


# ----- regex validation ------------------------------------------------------------------

_sre_parser: Any = importlib.import_module("re._parser")
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


def _op(code: Any) -> str:
    return str(getattr(code, "name", code))


def _walk(items: Any) -> Iterable[tuple[str, Any]]:
    """Every (opcode name, argument) in a parsed pattern, depth first."""
    for code, arg in items:
        name = _op(code)
        yield name, arg
        for child in _children(name, arg):
            yield from _walk(child)


def _children(name: str, arg: Any) -> list[Any]:
    if name in _REPEATS:
        return [arg[2]]
    if name == "SUBPATTERN":
        return [arg[3]]
    if name == "ATOMIC_GROUP":
        return [arg]
    if name == "BRANCH":
        return list(arg[1])
    if name in ("ASSERT", "ASSERT_NOT"):
        return [arg[1]]
    if name == "GROUPREF_EXISTS":
        return [p for p in arg[1:] if p is not None]
    return []


def _repeats_many(name: str, arg: Any) -> bool:
    return name in _REPEATS and (arg[1] > 1 or _op(arg[1]) == "MAXREPEAT")


def _check_structure(parsed: Any) -> None:
    for name, arg in _walk(parsed):
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            raise RuleError(
                "Backreferences (like \\1) aren't allowed in blocked expressions; they can "
                "take forever on some prompts."
            )
        if name in _REPEATS:
            low, high = arg[0], arg[1]
            if low > MAX_COUNTED_REPEAT or (_op(high) != "MAXREPEAT" and high > MAX_COUNTED_REPEAT):
                raise RuleError(f"Counted repeats can be at most {{{MAX_COUNTED_REPEAT}}}.")
        if _repeats_many(name, arg):
            for inner_name, inner_arg in _walk(arg[2]):
                if _repeats_many(inner_name, inner_arg) or inner_name == "BRANCH":
                    raise RuleError(
                        "Repeating a group that itself repeats or has alternatives (like "
                        "`(a+)+` or `(x|xy)*`) can take forever on some prompts; simplify it, "
                        "or add the alternatives as separate rules."
                    )


def _probe_chars(parsed: Any) -> list[str]:
    chars: list[str] = []
    for name, arg in _walk(parsed):
        if name == "LITERAL":
            chars.append(chr(arg))
        elif name == "IN":
            for inner, value in arg:
                inner_name = _op(inner)
                if inner_name == "LITERAL":
                    chars.append(chr(value))
                elif inner_name == "RANGE":
                    chars.append(chr(value[0]))
                elif inner_name == "CATEGORY":
                    chars.extend(
                        {"CATEGORY_DIGIT": "0", "CATEGORY_SPACE": " "}.get(_op(value), "a")
                    )
        elif name == "ANY":
            chars.append("a")
    base = list(dict.fromkeys([*chars, "a", " ", "0"]))
    return base[:8]


def probe_texts(pattern: str, sizes: Sequence[int] = PROBE_SIZES) -> list[str]:
    """Adversarial texts for a pattern: runs of its own characters, with and without a
    character that makes the match fail at the end; short ones first, so that a very
    slow pattern is caught (by `stop_slower_than`) before the hard time limit."""
    parsed = _sre_parser.parse(pattern, REGEX_FLAGS)
    chars = _probe_chars(parsed)
    texts: list[str] = []
    for size in sizes:
        for ch in chars:
            texts.append(ch * size)
            texts.append(ch * (size - 1) + "\x00")
        pairs = chars[:4]
        for a in pairs:
            for b in pairs:
                if a < b:
                    texts.append((a + b) * (size // 2))
                if a != b:  # a run behind a prefix, e.g. for x(?=a*a*b)
                    texts.append(a + b * (size - 1))
                    texts.append(a + b * (size - 2) + "\x00")
        texts.append(("".join(chars) + " ") * (size // (len(chars) + 1)))
    return texts


def check_regex_static(pattern: str) -> str:
    """Validate a regex without running it at scale; returns the cleaned pattern."""
    text = pattern.strip()
    if not text:
        raise RuleError("Give the regular expression to block.")
    if len(text) > MAX_REGEX_CHARS:
        raise RuleError(f"Blocked expressions can be at most {MAX_REGEX_CHARS} characters long.")
    try:
        with warnings.catch_warnings():
            # "Possible nested set" and the like: Python will read the pattern differently
            # in a later version, so it is refused now rather than change meaning silently.
            warnings.simplefilter("error", FutureWarning)
            parsed = _sre_parser.parse(text, REGEX_FLAGS)  # not cached: always warns
            compiled = re.compile(text, REGEX_FLAGS)
    except re.error as exc:
        where = f" (at position {exc.pos})" if exc.pos is not None else ""
        raise RuleError(f"That regular expression is invalid: {exc.msg}{where}.") from None
    except FutureWarning as exc:
        raise RuleError(
            f"That regular expression is ambiguous ({exc}); put a backslash before the `[`, "
            "`-`, `&`, `~` or `|` there."
        ) from None
    except (RecursionError, OverflowError):
        raise RuleError("That regular expression is too complex.") from None
    _check_structure(parsed)
    for sample in ("", "a", "hello world 123"):
        found = compiled.search(sample)
        if found is not None and found.end() == found.start():
            raise RuleError(
                "That expression can match an empty piece of text, so it would block every "
                "prompt; make every part of it required."
            )
    return text


async def check_regex(pattern: str, *, sandbox: RegexSandbox | None = None) -> str:
    """Full add-time validation: static checks, then timing probes in the sandbox."""
    text = check_regex_static(pattern)
    box = sandbox or default_sandbox()
    try:
        result = await box.search(
            [text],
            probe_texts(text),
            time_limit=PROBE_TIMEOUT_S,
            exhaustive=True,
            stop_slower_than=PROBE_MAX_SINGLE_S,
        )
    except RegexTimeout:
        raise RuleError(
            "That expression is far too slow on long prompts (catastrophic backtracking); "
            "simplify it, e.g. avoid several `.*`/`\\w*` in a row."
        ) from None
    if result.slowest > PROBE_MAX_SINGLE_S:
        raise RuleError(
            f"That expression is too slow on long prompts ({result.slowest * 1000:.0f} ms on "
            "one test text); simplify it, e.g. avoid several `.*`/`\\w*` in a row."
        )
    return text


# ----- the sandbox process ---------------------------------------------------------------


class RegexTimeout(Exception):
    """The regexes did not finish in time; the helper process was killed."""


class SandboxError(Exception):
    """The helper process failed in an unexpected way."""


@dataclass(frozen=True)
class SandboxResult:
    hit: tuple[int, int, int, int] | None  # (pattern index, text index, start, end)
    slowest: float  # seconds, slowest single search


_WORKER_SOURCE = r"""
import json, re, select, sys, time
IDLE = float(sys.argv[1])
FLAGS = int(sys.argv[2])
cache = {}
stdin = sys.stdin.buffer
while True:
    ready, _, _ = select.select([stdin], [], [], IDLE)
    if not ready:
        break
    line = stdin.readline()
    if not line:
        break
    req = json.loads(line)
    hit = None
    slowest = 0.0
    try:
        for pi, pattern in enumerate(req["patterns"]):
            rx = cache.get(pattern)
            if rx is None:
                if len(cache) > 2000:
                    cache.clear()
                rx = cache[pattern] = re.compile(pattern, FLAGS)
            for ti, text in enumerate(req["texts"]):
                t0 = time.perf_counter()
                m = rx.search(text)
                slowest = max(slowest, time.perf_counter() - t0)
                if req["slow"] is not None and slowest > req["slow"]:
                    raise StopIteration
                if m is not None and hit is None:
                    hit = [pi, ti, m.start(), m.end()]
                    if not req["exhaustive"]:
                        break
            if hit is not None and not req["exhaustive"]:
                break
        reply = {"hit": hit, "slowest": slowest}
    except StopIteration:
        reply = {"hit": hit, "slowest": slowest}
    except Exception as exc:
        reply = {"error": type(exc).__name__}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
"""


@dataclass
class RegexSandbox:
    """A helper process that runs regex searches and is killed when one overruns.

    Started on first use, it exits by itself after `idle_exit_s` without requests and is
    restarted when needed. Thread-safe; calls are serialised. `close()` stops it.
    """

    idle_exit_s: float = 300.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    restarts: int = field(default=0, init=False)

    async def search(
        self,
        patterns: Sequence[str],
        texts: Sequence[str],
        *,
        time_limit: float,
        exhaustive: bool = False,
        stop_slower_than: float | None = None,
    ) -> SandboxResult:
        """Search the texts with each pattern in turn; the first hit wins.

        `exhaustive` runs every search even after a hit (to time them all);
        `stop_slower_than` ends the batch as soon as one search took longer than that.
        Raises RegexTimeout when the whole batch overruns `time_limit` (helper killed).
        """
        if not patterns or not texts:
            return SandboxResult(None, 0.0)
        payload = {
            "patterns": list(patterns),
            "texts": list(texts),
            "exhaustive": exhaustive,
            "slow": stop_slower_than,
        }
        request = json.dumps(payload).encode() + b"\n"
        return await asyncio.to_thread(self._call, request, time_limit)

    def _call(self, request: bytes, timeout: float) -> SandboxResult:
        with self._lock:
            for attempt in (1, 2):
                proc = self._ensure()
                try:
                    reply = self._roundtrip(proc, request, timeout)
                except TimeoutError:
                    self._stop()
                    raise RegexTimeout(f"regex search exceeded {timeout:.1f} s") from None
                except (OSError, EOFError, ValueError) as exc:
                    # The helper exited (idle timeout or crash) just before the request.
                    self._stop()
                    if attempt == 2:
                        raise SandboxError(f"regex helper failed: {exc}") from None
                    continue
                if "error" in reply:
                    raise SandboxError(f"regex helper error: {reply['error']}")
                hit = reply["hit"]
                return SandboxResult(
                    tuple(hit) if hit is not None else None, float(reply["slowest"])
                )
        raise SandboxError("unreachable")  # pragma: no cover

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed source
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _WORKER_SOURCE,
                str(self.idle_exit_s),
                str(int(REGEX_FLAGS)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.restarts += 1
        return self._proc

    @staticmethod
    def _roundtrip(proc: subprocess.Popen[bytes], request: bytes, timeout: float) -> Any:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(request)
        proc.stdin.flush()
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buffer = b""
        while not buffer.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("regex helper exited")
            buffer += chunk
        return json.loads(buffer)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def close(self) -> None:
        with self._lock:
            self._stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None


_default: RegexSandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> RegexSandbox:
    """The process-wide sandbox (closed at interpreter exit)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RegexSandbox()
            atexit.register(_default.close)
        return _default
