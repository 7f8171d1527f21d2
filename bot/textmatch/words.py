"""Words of a folded prompt and how a word matches a blocked term's word.

Term rules are matched on words, never inside words: "cunt" does not hit "Scunthorpe",
"ass" does not hit "class". A word also matches with a plural ending (-s, -es) and with
letters stretched to three or more ("fuuuck"; a doubled letter is left alone so that "god"
does not hit "good"). Letters spaced out with separators ("n-s-f-w", "n.s.f.w", "n s f w")
and words split by punctuation ("ns-fw") are joined before matching (`word_views`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.textmatch.normalise import AMBIGUOUS_ONE


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


def word_forms(word: str) -> list[str]:
    """The word and the word without a plural ending."""
    forms = [word]
    if len(word) > 2 and word.endswith("s"):
        forms.append(word[:-1])
        if len(word) > 3 and word.endswith("es"):
            forms.append(word[:-2])
    return forms
