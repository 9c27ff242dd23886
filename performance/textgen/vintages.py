"""Vintages: the checkpoints a training run keeps, and references to them.

`train --keep-every N` writes DIR/step-000500/ (model.safetensors + its own model.json) every N
steps, each folder renamed into place whole, so a reader never sees half of one. References:
`DIR@500` is that step, `DIR@best` the folder itself (the best validation loss), `DIR@follow` the
newest kept step at the moment it is asked for (live training on stage).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from performance.textgen.base import ModelFileError

STEP_DIR = "step-{:06d}"
_STEP = re.compile(r"^step-(\d{6,})$")
FOLLOW = "follow"


def step_dir(model_dir: Path, step: int) -> Path:
    """Where step `step` of a run in model_dir is kept."""
    return Path(model_dir) / STEP_DIR.format(step)


def kept_steps(model_dir: Path) -> list[int]:
    """The steps kept in model_dir, ascending (folders holding a card)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    out = []
    for d in model_dir.iterdir():
        m = _STEP.match(d.name)
        if m and (d / "model.json").exists():
            out.append(int(m.group(1)))
    return sorted(out)


def split_ref(ref: str) -> tuple[str, str | None]:
    """"DIR@500" → ("DIR", "500"); "DIR" → ("DIR", None)."""
    base, sep, tag = str(ref).rpartition("@")
    if not sep or not base:
        return str(ref), None
    return base, tag


def resolve_tag(base_dir: Path, ref: str, tag: str) -> Path:
    """The folder a tag names inside base_dir; one clear line when it does not exist."""
    if tag == "best":
        return base_dir
    steps = kept_steps(base_dir)
    if tag == FOLLOW:
        if not steps:
            raise ModelFileError(f"model '{ref}': no checkpoint kept in {base_dir} yet (train with --keep-every N)")
        return step_dir(base_dir, steps[-1])
    if not tag.isdigit():
        raise ModelFileError(f"model '{ref}': '@{tag}' is not a step; allowed: @best, @follow or a kept step "
                             f"({', '.join(map(str, steps)) or 'none kept'})")
    if int(tag) not in steps:
        raise ModelFileError(f"model '{ref}': step {int(tag)} was not kept in {base_dir}; kept steps: "
                             f"{', '.join(map(str, steps)) or 'none (train with --keep-every N)'}")
    return step_dir(base_dir, int(tag))


def keep_checkpoint(out_dir: Path, net, card: dict) -> Path:
    """Write the net and its card as step-NNNNNN/, atomically (a temporary folder renamed)."""
    # lazy: this pulls in torch (~1.5 s); only the paths that run a neural model pay for it
    from performance.textgen.checkpoint import save_weights

    final = step_dir(out_dir, int(card["steps"]))
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(net, tmp / "model.safetensors")
    (tmp / "model.json").write_text(json.dumps(card, indent=1, ensure_ascii=False))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def checkpoint_label(name: str, card: dict) -> str:
    """What the caption says about a checkpoint: name · step · epoch · validation loss. A vintage
    named by its step ("wavenet@500") already says it: then only the loss follows, so three
    columns side by side keep the figure the audience compares."""
    parts = [name]
    tagged = card.get("steps") is not None and name.endswith(f"@{card['steps']}")
    if card.get("steps") is not None and not tagged:
        parts.append(f"step {card['steps']}")
    if card.get("epochs") is not None and not tagged:
        parts.append(f"epoch {float(card['epochs']):.2f}")
    if card.get("val_loss") is not None:
        parts.append(f"val {float(card['val_loss']):.2f}")
    return " · ".join(parts)
