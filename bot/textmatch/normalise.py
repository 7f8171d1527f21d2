"""Normalisation: `fold` a prompt character by character, remembering where every folded
character came from in the original text (so a hit can be shown to the member).

It removes invisible characters (zero-width, format and other "empty" characters), applies
NFKD (fullwidth, mathematical, circled/squared letters → plain letters; accents split off)
and drops combining marks, maps common lookalikes (Cyrillic/Greek/small capitals/regional
indicator letters) to Latin, folds case and, with `leet`, simple leetspeak. In leetspeak
"1" may stand for "i" or "l" (it stays "1", see `AMBIGUOUS_ONE`); every other digit/symbol
has one meaning (0→o 3→e 4→a 5→s 7→t @→a $→s).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

MAX_FOLD_EXPANSION = 4  # characters a single input character may fold into

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
