"""Clean the shipped poetry corpus reproducibly: the original files in, verse out.

The prosodic corpus carries editorial marks that models learn and show on stage. Each rule below
names what it removes; `clean_text` applies them in order and is deterministic (same input, same
bytes out), so `python -m performance.textgen.cleaning SRC DST` rebuilds the shipped cleaned corpus
exactly and `make corpus-check` can verify it.

Rules, in order:
1. headings: lines with letters but no lowercase letter ("THE LEADEN ECHO", "PARADISE LOST",
   "THE END OF THE FIRST BOOK.") become blank: a title is not a line of verse.
2. numbers and dividers: lines holding a digit (stanza numbers, "_23", "Dec. 7th. 1875") and lines
   without letters ("#", ". . .") become blank.
3. editorial notes: lines that open with "(Variant" become blank; square brackets (an editor's
   variant readings) are dropped, their words kept.
4. caesura marks: Hopkins's " | " becomes one space.
5. stress marks: prosodic wrote an accented vowel as "-e" ("t-eme's v-est" for "tíme's vást",
   "-eur" for "óur"). A word holding "-e" that is not a plain hyphenated compound is repaired to the
   most frequent corpus word among the five vowel readings (a e i o u: "th-eir" is "their"). With
   no reading known, a compound whose first part is a corpus word and whose second part has three
   or more letters ("Never-eldering", "of-earth") is kept; otherwise the hyphen is dropped
   ("selv-ed": "selved", "Rank-ed": "Ranked").
6. spacing: trailing spaces dropped, runs of blank lines cut to one, the file ends with one newline.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections import Counter
from pathlib import Path

_WORD = re.compile(r"[A-Za-z’']+")
_MARKED = re.compile(r"(?<![A-Za-z’'])([A-Za-z’']*)-e([A-Za-z’']*)")
_LOWER = re.compile(r"[a-z]")
_LETTER = re.compile(r"[A-Za-z]")
_VOWELS = ("a", "e", "i", "o", "u")


def word_counts(texts: list[str]) -> Counter:
    """Lowercased word counts over `texts`, leaving out words that carry a stress mark."""
    counts: Counter = Counter()
    for text in texts:
        for tok in re.findall(r"[A-Za-z’'-]+", text):
            if "-e" in tok:
                continue  # a marked word is what is being repaired: its fragments are not words
            for w in tok.split("-"):
                if w:
                    counts[w.lower()] += 1
    return counts


def _case_like(word: str, model: str) -> str:
    return word[:1].upper() + word[1:] if model[:1].isupper() else word


def repair_marks(line: str, counts: Counter) -> str:
    """Rule 5 on one line: every "-e" stress mark repaired to a corpus word where one fits."""

    def fix(m: re.Match) -> str:
        left, right = m.group(1), m.group(2)
        best, best_n = None, 0
        for v in _VOWELS:
            cand = left + v + right
            n = counts.get(cand.lower(), 0)
            if n > best_n:
                best, best_n = cand, n
        if best is None and len(left) > 1 and len(right) > 1 and left.lower() in counts:
            return m.group(0)  # a real compound: "lovely-eyed", "Never-eldering"
        if best is None:
            return left + "e" + right
        if best == "i":
            return "I"
        return _case_like(best, left) if left[:1].isupper() else best

    return _MARKED.sub(fix, line)


def clean_line(line: str, counts: Counter) -> str:
    """Rules 1–5 on one line; an empty string means the line is dropped (a blank line)."""
    line = line.rstrip()
    if not _LETTER.search(line) or re.search(r"\d", line):
        return ""
    if not _LOWER.search(line):
        return ""
    if line.lstrip().startswith("(Variant"):
        return ""
    line = line.replace("[", "").replace("]", "")
    line = re.sub(r"\s*\|\s*", " ", line)
    if "-e" in line:
        line = repair_marks(line, counts)
    return line.rstrip()


def clean_text(text: str, counts: Counter) -> str:
    """The whole of one file cleaned (rules 1–6)."""
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = clean_line(raw, counts)
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def _order(src: Path) -> list[str]:
    order = src / "ORDER"
    if order.exists():
        return [ln.strip() for ln in order.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return sorted(p.name for p in src.glob("*.txt"))


def clean_folder(src: Path, dst: Path) -> dict[str, str]:
    """Clean every corpus file of `src` into `dst` (same names, ORDER copied); returns name -> sha256
    of the cleaned file. The word counts for rule 5 come from all of `src`'s files together."""
    names = _order(src)
    texts = {n: (src / n).read_text(encoding="utf-8") for n in names}
    counts = word_counts(list(texts.values()))
    dst.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for n in names:
        data = clean_text(texts[n], counts).encode("utf-8")
        (dst / n).write_bytes(data)
        hashes[n] = hashlib.sha256(data).hexdigest()
    if (src / "ORDER").exists():
        (dst / "ORDER").write_bytes((src / "ORDER").read_bytes())
    return hashes


def main(argv: list[str] | None = None) -> int:
    """CLI: clean SRC into DST and print each file's sha256 (the lines for SOURCES.md)."""
    ap = argparse.ArgumentParser(description="Clean a poetry corpus folder reproducibly (rules in the module doc).")
    ap.add_argument("src", type=Path, help="folder of original .txt files (with ORDER)")
    ap.add_argument("dst", type=Path, help="folder to write the cleaned files to")
    a = ap.parse_args(argv)
    if not a.src.is_dir():
        print(f"{a.src}: not a folder (give the folder of original corpus files)", file=sys.stderr)
        return 2
    for name, h in clean_folder(a.src, a.dst).items():
        print(f"| {name} | {h} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
