"""The performer's keys, turned into the same Commands OSC produces.

space GO · b back · p pause/resume · Esc panic · ↑/↓ temperature ±0.1 · 0 release the override ·
r reseed · k keep · c caption · f fullscreen (handled by the runtime) · Ctrl+Q twice in 2 s quits.
Esc never quits: a panicking performer must not end the show by accident.
"""

from __future__ import annotations

from typing import Any

from performance.protocol.commands import PREFIX, Command

KEY_HELP = [
    ("space", "GO: start the scene standing by"),
    ("b", "back: the previous scene"),
    ("p", "pause / resume"),
    ("Esc", "panic: fade to black and silence (GO resumes)"),
    ("↑ / ↓", "temperature override +0.1 / −0.1"),
    ("0", "release the temperature override"),
    ("r", "reseed: a new poem with a new seed, now"),
    ("k", "keep the current poem (harvest.txt)"),
    ("c", "caption on/off"),
    ("f", "fullscreen on/off"),
    ("n / m", "x-ray: next / previous hidden unit"),
    ("Ctrl+Q twice", "quit"),
]

TEMPERATURE_STEP = 0.1


def command_for_key(key: int, engine: Any) -> Command | None:
    """Map a pygame key code to a Command, reading the engine only for current values."""
    import pygame

    simple = {
        pygame.K_SPACE: "go",
        pygame.K_b: "back",
        pygame.K_ESCAPE: "panic",
        pygame.K_0: "temperature/release",
        pygame.K_KP0: "temperature/release",
        pygame.K_r: "reseed",
        pygame.K_k: "keep",
        pygame.K_c: "caption",
    }
    if key in simple:
        return Command(f"{PREFIX}/{simple[key]}", source="key")
    if key == pygame.K_p:
        paused = engine.paused or engine.blacked_out
        return Command(f"{PREFIX}/{'resume' if paused else 'pause'}", source="key")
    if key in (pygame.K_n, pygame.K_m) and getattr(engine.scene, "xray", None) is not None:
        unit = engine.neuron_shown if engine.neuron_shown is not None else 0
        return Command(f"{PREFIX}/neuron", (max(0, unit + (1 if key == pygame.K_n else -1)),), source="key")
    if key in (pygame.K_UP, pygame.K_DOWN):
        base = engine.override if engine.override is not None else engine.current_temperature
        delta = TEMPERATURE_STEP if key == pygame.K_UP else -TEMPERATURE_STEP
        return Command(f"{PREFIX}/temperature", (round(min(3.0, max(0.0, base + delta)), 3),), source="key")
    return None
