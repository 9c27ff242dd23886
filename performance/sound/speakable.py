"""Text as a reader would say it: a line on the stage becomes words a voice can speak.

Numbers are read as words ("12" → "twelve", "1999" → "nineteen ninety-nine", "3rd" → "third"),
corpus marks and stray symbols (brackets, underscores, asterisks, markup, lone dashes) are never
spoken as symbols, and punctuation stays where it shapes the reading (a comma pauses, a full stop
falls). Each word on the stage keeps the spoken words it became, so the time a voice spends on
them lights that word: `Speakable.owner[i]` is the stage word (index in `line.split()`) of spoken
word i. Pure functions, shared by the speech worker and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
           "nine": "ninth", "twelve": "twelfth"}
SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
SAY_SYMBOL = {"&": "and", "%": "percent", "+": "plus", "@": "at", "=": "equals", "°": "degrees"}
KEEP_PUNCT = ".,;:!?"  # what a voice reads as a pause or a fall, not as a symbol
DASHES = "—–"  # a dash between words reads as a comma's pause
_NUMBER = re.compile(r"(\d[\d,]*)(\.\d+)?(st|nd|rd|th|s)?$")
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,40}>")
_WORD_CHARS = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)


def number_words(n: int) -> str:
    """0 ≤ n < 10^15 in English words ("one hundred and five")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("-" + ONES[n % 10] if n % 10 else "")
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + (" and " + number_words(rest) if rest else "")
    for size, name in SCALES:
        if n >= size:
            head, rest = divmod(n, size)
            tail = "" if not rest else (" and " if rest < 100 else " ") + number_words(rest)
            return number_words(head) + " " + name + tail
    return str(n)  # unreachable: SCALES ends at a thousand


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    stem, dash, unit = last.rpartition("-")
    unit_o = ORDINAL.get(unit, unit[:-1] + "ieth" if unit.endswith("y") else unit + "th")
    return (head + " " if head else "") + stem + dash + unit_o


def say_number(token: str) -> str | None:
    """A number as words, or None when `token` is not one. Years (1100-1999, 2010-2099) read in pairs."""
    m = _NUMBER.match(token)
    if not m:
        return None
    digits = m.group(1).replace(",", "")
    if not digits or len(digits) > 15:
        return " ".join(ONES[int(c)] for c in digits if c.isdigit()) or None
    n = int(digits)
    if m.group(3) in (None, "s") and not m.group(2) and "," not in m.group(1) and (
            1100 <= n <= 1999 or 2010 <= n <= 2099):
        hi, lo = divmod(n, 100)
        words = number_words(hi) + " " + ("hundred" if lo == 0 else ("oh " if lo < 10 else "") + number_words(lo))
    else:
        words = number_words(n)
    if m.group(2):
        words += " point " + " ".join(ONES[int(c)] for c in m.group(2)[1:])
    if m.group(3) in ("st", "nd", "rd", "th"):
        words = _ordinal(words)
    elif m.group(3) == "s":
        words = words[:-1] + "ies" if words.endswith("y") else words + "s"
    return words


@dataclass(frozen=True)
class Speakable:
    """A line as spoken: `words` to say (punctuation attached), `owner[i]` the stage word each
    came from, and `text`, the words joined (what the synthesiser reads)."""

    stage_words: tuple[str, ...]
    words: tuple[str, ...]
    owner: tuple[int, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _spoken(word: str) -> list[str]:
    """One stage word as the words a reader says for it (none for a lone symbol)."""
    trail = ""
    core = _TAG.sub("", word)  # markup left in a corpus (<i>, </b>) is never read out
    while core and (core[-1] in KEEP_PUNCT or core[-1] in DASHES or core[-1] in "\"'”’)]}*_>"):
        if core[-1] in KEEP_PUNCT and not trail:
            trail = core[-1] if core[-1] != "." or not core.endswith("...") else "..."
        core = core[:-1]
    if word and word[-1] in DASHES and not trail:
        trail = ","
    core = core.strip("\"'“”‘’([{<*_#~^`|\\/")
    said = say_number(core) if core[:1].isdigit() else None
    if said is not None:
        out = said.split()
    else:
        out = []
        for piece in re.split(r"([&%+@=°]|\d[\d,.]*(?:st|nd|rd|th|s)?)", core):
            if not piece:
                continue
            if piece in SAY_SYMBOL:
                out.append(SAY_SYMBOL[piece])
            elif piece[0].isdigit():
                out.extend((say_number(piece.rstrip(".,")) or "").split())
            else:
                out.extend(_WORD_CHARS.findall(piece))
    if out and trail:
        out[-1] += trail
    return out


def speakable(line: str) -> Speakable:
    """The spoken form of one stage line (its words as `line.split()` gives them)."""
    stage = tuple(line.split())
    words: list[str] = []
    owner: list[int] = []
    for k, w in enumerate(stage):
        said = _spoken(w)
        if not said and w and w[0] in DASHES + "-" and words and words[-1][-1] not in KEEP_PUNCT:
            words[-1] += ","  # a dash standing alone between words: a comma's pause, not a word
        for s in said:
            words.append(s)
            owner.append(k)
    return Speakable(stage, tuple(words), tuple(owner))
