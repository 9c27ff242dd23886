"""The state, as OSC subscribers receive it: the Snapshot's plain values to /lectern/state/... messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# snapshot key -> the OSC arguments (the addresses and types are the contract: protocol/snapshot.py STATE)
SHAPES: dict[str, Callable[[Any, dict], list]] = {
    "scene": lambda v, s: [int(v[0]), str(v[1])],
    "standby": lambda v, s: [int(v[0]), str(v[1])],
    "poem": lambda v, s: [int(v[0]), int(v[1])],
    "temperature": lambda v, s: [float(v)],
    "seed": lambda v, s: [int(v)],
    "model": lambda v, s: [str(v)],
    "paused": lambda v, s: [int(v)],
    "voice": lambda v, s: [int(v)],
    "volume": lambda v, s: [float(v)],
    "model_override": lambda v, s: [str(v)],
    "prompt_override": lambda v, s: [str(v)[:200]],
    "health": lambda v, s: [float(v[0]), float(v[1]), int(v[2]), int(v[3]), float(v[4])]
    + ([str(s["served"])] if s.get("served") else []),
    "reload_error": lambda v, s: [str(v)[:400]],
    "speaking_voice": lambda v, s: [str(v)[:200]],
}


def state_messages(state: dict, on_bad: Callable[[str, Any], None] | None = None) -> dict[str, list]:
    """{"state/scene": [3, "brerin"], ...} for the keys the snapshot has; a value that cannot be
    sent is reported to `on_bad` and left out (one odd value must not silence the others)."""
    out = {}
    for key, shape in SHAPES.items():
        if key in state:
            try:
                out[f"state/{key}"] = shape(state[key], state)
            except (TypeError, ValueError, IndexError):
                if on_bad is not None:
                    on_bad(key, state[key])
    return out
