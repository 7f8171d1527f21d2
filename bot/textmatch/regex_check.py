r"""Add-time validation of an admin's blocked regex (`check_regex`).

Python's `re` has no timeout and holds the GIL while it backtracks, so a pattern is
rejected when it does not compile, is longer than `MAX_REGEX_CHARS`, uses backreferences,
repeats a group that itself repeats or has alternatives (`(a+)+`, `(a|aa)*`: exponential
backtracking), has huge counted repeats, or can match an empty string (it would block every
prompt). It is then timed in the sandbox against adversarial probe texts built from its own
characters (runs of 200, 700 and 2,000 characters, with and without a failing end or a
prefix): polynomial blow-ups like `a*a*b` (13 s on 5,000 "a"s) are rejected, quadratic
`\w*word\w*` is accepted.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from bot.textmatch.rules import RuleError
from bot.textmatch.sandbox import REGEX_FLAGS, RegexSandbox, RegexTimeout, default_sandbox

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
