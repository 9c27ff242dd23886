"""Find a model folder and load it with the loader its card names. Never unpickles anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

from performance.textgen.base import Generator, ModelFileError

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"

NEURAL_KINDS = ("char-lstm", "char-gru", "word-lstm", "word-gru", "char-qrnn", "word-qrnn", "char-transformer", "word-transformer")
CLASSIC_KINDS = ("markov", "spreeder")
KINDS = NEURAL_KINDS + CLASSIC_KINDS


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """MODEL is a folder, or a name under models/. Raises ModelFileError naming what was tried."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    candidate = MODELS_DIR / str(name_or_path)
    if candidate.is_dir():
        return candidate
    known = sorted(d.name for d in MODELS_DIR.iterdir() if (d / "model.json").exists()) if MODELS_DIR.is_dir() else []
    raise ModelFileError(
        f"model '{name_or_path}': no such folder, and no models/{name_or_path}/ "
        f"(known models: {', '.join(known) or 'none'})"
    )


def read_card(model_dir: Path) -> dict:
    """Read and minimally validate model.json."""
    card_path = model_dir / "model.json"
    if not card_path.exists():
        raise ModelFileError(f"{card_path}: missing (a model folder holds model.json and its weights)")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{card_path}: not valid JSON ({e})") from e
    if not isinstance(card, dict) or card.get("kind") not in KINDS:
        raise ModelFileError(f"{card_path}: key 'kind' is {card.get('kind')!r}; allowed: {', '.join(KINDS)}")
    return card


def load_model(name_or_path: str | Path, device: str = "cpu") -> Generator:
    """Load any model folder as a Generator."""
    model_dir = resolve_model_dir(name_or_path)
    card = read_card(model_dir)
    kind = card["kind"]
    if kind == "markov":
        from performance.textgen.markov import load_markov

        return load_markov(model_dir, card)
    if kind == "spreeder":
        from performance.textgen.spreeder import load_spreeder

        return load_spreeder(model_dir, card)
    from performance.textgen.neural import load_neural

    return load_neural(model_dir, card, device=device)


def write_card(model_dir: Path, card: dict) -> None:
    """Write model.json atomically (a crash never leaves half a card)."""
    tmp = model_dir / "model.json.tmp"
    tmp.write_text(json.dumps(card, indent=1, ensure_ascii=False))
    os.replace(tmp, model_dir / "model.json")
