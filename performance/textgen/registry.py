"""Load any model folder with the loader its card's kind names (performance.textgen.kinds)."""

from __future__ import annotations

from pathlib import Path

from performance.textgen.base import Generator, ModelFileError
from performance.textgen.cards import read_card, resolve_model_dir
from performance.textgen.kinds import kind


def load_model(name_or_path: str | Path, device: str = "cpu") -> Generator:
    """Load any model folder as a Generator."""
    model_dir = resolve_model_dir(name_or_path)
    card = read_card(model_dir)
    spec = kind(card["kind"])
    if spec is None:  # read_card refuses unknown kinds; kept for a card edited between the two
        raise ModelFileError(f"{model_dir / 'model.json'}: unknown kind {card['kind']!r}")
    loader = spec.function("load")
    return loader(model_dir, card, device=device) if spec.neural else loader(model_dir, card)
