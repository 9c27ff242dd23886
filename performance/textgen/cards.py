"""Model folders and their cards: find a folder by name or path, read and write model.json.

Every kind writes its card through `write_card`; nothing here imports a kind. Never unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from performance.safe_files import UnsafeFile, load_json
from performance.textgen.base import ModelFileError
from performance.textgen.kinds import NAMES as KINDS

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """MODEL is a folder, or a name under models/, optionally with a vintage tag (DIR@500,
    DIR@best, DIR@follow: see vintages.py). Raises ModelFileError naming what was tried."""
    p = Path(name_or_path)
    if "@" in str(name_or_path) and not p.is_dir():
        # lazy: `run.py --help` imports this module; what the command needs loads when it runs
        from performance.textgen.vintages import resolve_tag, split_ref

        base, tag = split_ref(str(name_or_path))
        if tag is not None:
            return resolve_tag(resolve_model_dir(base), str(name_or_path), tag)
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
        card = load_json(card_path)
    except UnsafeFile as e:
        raise ModelFileError(str(e)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{card_path}: not valid JSON ({e})") from None
    except OSError as e:
        raise ModelFileError(f"{card_path}: cannot read ({e.strerror})") from None
    if not isinstance(card, dict):
        raise ModelFileError(f"{card_path}: must be a JSON object {{\"kind\": ...}}, got a {type(card).__name__}")
    if card.get("kind") not in KINDS:
        raise ModelFileError(f"{card_path}: key 'kind' is {card.get('kind')!r}; allowed: {', '.join(KINDS)}")
    return card


def write_card(model_dir: Path, card: dict) -> None:
    """Write model.json atomically (a crash never leaves half a card)."""
    tmp = model_dir / "model.json.tmp"
    tmp.write_text(json.dumps(card, indent=1, ensure_ascii=False))
    os.replace(tmp, model_dir / "model.json")
