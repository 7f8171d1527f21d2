"""A guild's prompt rules (`RuleSet`): blocked terms matched in-process, regexes in the sandbox.

Term rules (the usual case) never need the helper process: they are matched in linear time
with a dictionary index keyed by each term's first word. A term with several words ("blow
job") matches those words in a row, or written as one word. Regex rules are searched
(anywhere, case-insensitive) in the folded text, its leetspeak forms and the form with
spaced-out letters joined (`regex_texts`), in the sandbox with a hard time limit: when it
overruns, `RegexTimeout` is raised and the caller refuses the prompt (fail closed).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.textmatch.normalise import AMBIGUOUS_ONE, Folded, fold
from bot.textmatch.sandbox import REGEX_FLAGS, RegexSandbox, default_sandbox
from bot.textmatch.words import (
    Runs,
    Token,
    alnum_tokens,
    runs,
    runs_match,
    skeleton,
    spaced_tokens,
    word_forms,
    word_views,
)

log = logging.getLogger(__name__)

MAX_TERM_CHARS = 100
MAX_TERM_WORDS = 8
MIN_TERM_ALNUM = 2
MATCH_TIMEOUT_S = 2.0  # all regexes of a guild on one prompt, hard (process killed)


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
                for form_i, form in enumerate(word_forms(token.text)):
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
            candidates = word_forms(text) if last else [text]
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
