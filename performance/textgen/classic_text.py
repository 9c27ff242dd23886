"""Corpus text as the classic generators learn it: verse lines and stanza breaks, no dividers."""

from __future__ import annotations

import re

_LETTER = re.compile(r"[^\W\d_]")


def is_heading(line: str) -> bool:
    """A title or heading, not verse: three or more letters and none of them lowercase
    ("THE LEADEN ECHO", "PARADISE LOST", "BOOK II.")."""
    return len(_LETTER.findall(line)) >= 3 and not any(c.islower() for c in line)


def verse_text(text: str) -> str:
    """`text` with divider lines ("#", ". . . .", bare section numbers: no letters) and headings
    (is_heading: titles in capitals, which a template or a chain must not put mid-poem) made blank and
    runs of blank lines cut to one, so a chain or a template never copies a divider as if it were
    verse, and a stanza break is always exactly one empty line. Lines keep their words as written
    (trailing spaces dropped)."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.rstrip() if _LETTER.search(line) and not is_heading(line) else ""
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"
