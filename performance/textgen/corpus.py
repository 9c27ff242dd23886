"""Read a training corpus (a file, or a folder of .txt files) with its provenance for the card."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from performance.textgen.base import ModelFileError

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "assets" / "corpora" / "poetry_en"


@dataclass(frozen=True)
class Corpus:
    """The text and what the model card records about it."""

    name: str
    text: str
    files: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def card(self) -> dict:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "files": list(self.files)}


def read_corpus(path: str | Path) -> Corpus:
    """A file, or a folder whose ORDER file lists its .txt files (else sorted by name), joined by a blank line."""
    p = Path(path)
    if p.is_file():
        files = [p]
    elif p.is_dir():
        order = p / "ORDER"
        if order.exists():
            names = [ln.strip() for ln in order.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            files = [p / n for n in names]
        else:
            files = sorted(p.glob("*.txt"))
        if not files:
            raise ModelFileError(f"{p}: corpus folder holds no .txt files")
    else:
        raise ModelFileError(f"{p}: corpus not found (give a text file or a folder of .txt files)")
    parts = []
    for f in files:
        try:
            parts.append(f.read_text(encoding="utf-8").replace("\r\n", "\n").strip("\n"))
        except FileNotFoundError as e:
            raise ModelFileError(f"{f}: listed in the corpus but missing") from e
        except UnicodeDecodeError as e:
            raise ModelFileError(f"{f}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    return Corpus(name=p.name if p.is_dir() else p.stem, text="\n\n".join(parts) + "\n", files=tuple(f.name for f in files))
