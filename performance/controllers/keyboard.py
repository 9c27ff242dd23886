"""The performer's keys, turned into the same validated Commands every controller produces.

space GO · b back · p pause/resume · Esc panic · ↑/↓ temperature ±0.1 · 0 release the override ·
r reseed · k keep · c caption · n/m x-ray unit · f fullscreen · Ctrl+R reload · Ctrl+Q twice in 2 s quits.
Esc never quits: a panicking performer must not end the show by accident. Under --install the
keys are locked until the setlist's unlock chord. The keys read the last state Snapshot, never
the Engine (for what p toggles and where ↑/↓ start from).
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from performance.controllers.base import Context, Controller
from performance.controllers.inbox import Inbox
from performance.protocol.commands import Command, CommandError, validate
from performance.protocol.snapshot import Snapshot

log = logging.getLogger("lectern.keyboard")

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
    ("Ctrl+R", "reload the setlist and its scene files (at the next poem or cue boundary)"),
]
TEMPERATURE_STEP = 0.1
QUIT_WITHIN_S = 2.0  # Ctrl+Q must come twice within this long


def _simple_keys() -> dict[int, str]:
    # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
    import pygame

    return {pygame.K_SPACE: "go", pygame.K_b: "back", pygame.K_ESCAPE: "panic", pygame.K_0: "temperature/release",
            pygame.K_KP0: "temperature/release", pygame.K_r: "reseed", pygame.K_k: "keep", pygame.K_c: "caption",
            pygame.K_f: "fullscreen"}


def _key(name: str, args: tuple = (), scene_count: int = 1) -> Command:
    return validate(name, args, scene_count=scene_count, source="key", network=False, received=time.monotonic())


def command_for_key(key: int, snap: Snapshot) -> Command | None:
    """Map a pygame key code to a Command, reading the snapshot only for current values."""
    # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
    import pygame

    simple = _simple_keys()
    if key in simple:
        return _key(simple[key])
    if key == pygame.K_p:
        return _key("resume" if snap.paused else "pause")
    if key in (pygame.K_n, pygame.K_m) and snap.xray:
        unit = snap.neuron if snap.neuron is not None else 0
        return _key("neuron", (max(0, unit + (1 if key == pygame.K_n else -1)),))
    if snap.offer and (pygame.K_1 <= key <= pygame.K_9 or pygame.K_KP1 <= key <= pygame.K_KP9):
        first = pygame.K_1 if pygame.K_1 <= key <= pygame.K_9 else pygame.K_KP1
        return _key("choose", (key - first + 1,))  # co-writing: candidate N on stage
    if key == pygame.K_h:
        return _key("choose", (0,))  # co-writing: offer the next word (scenes with every = "hold")
    if key == pygame.K_a and snap.audience:  # words from the audience off/on (setlists with [audience])
        return _key("audience", (0 if snap.audience == "on" else 1,))
    if key in (pygame.K_UP, pygame.K_DOWN):
        delta = TEMPERATURE_STEP if key == pygame.K_UP else -TEMPERATURE_STEP
        return _key("temperature", (round(snap.temperature + delta, 3),))  # the table clamps it
    return None


def chord_matches(chord: str, ev: Any) -> bool:
    """Does a KEYDOWN event press `chord` ("ctrl+shift+u": modifiers exactly, then the key)?"""
    # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
    import pygame

    parts = chord.lower().split("+")
    return (bool(ev.mod & pygame.KMOD_CTRL) == ("ctrl" in parts) and bool(ev.mod & pygame.KMOD_SHIFT) == ("shift" in parts)
            and bool(ev.mod & pygame.KMOD_ALT) == ("alt" in parts) and pygame.key.name(ev.key) == parts[-1])


class Keyboard(Controller):
    """The stage window's keys (read on the frame thread: SDL delivers them there)."""

    name = "keyboard"

    def __init__(self, locked: bool = False, unlock_chord: str = "ctrl+shift+u", install: bool = False) -> None:
        self.locked = locked
        self.install = install  # an installation ignores the window's close button
        self.unlock_chord = unlock_chord
        self.snap = Snapshot()
        self.inbox: Inbox | None = None
        self._last_ctrl_q = -1e9

    @classmethod
    def from_args(cls, args: argparse.Namespace, ctx: Context) -> Keyboard:
        install = getattr(ctx.setlist, "install", None)
        chord = getattr(install, "unlock_chord", "ctrl+shift+u") if install else "ctrl+shift+u"
        install = bool(getattr(args, "install", False))
        return cls(locked=install, unlock_chord=chord, install=install)

    def start(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def on_state(self, snap: Snapshot) -> None:
        self.snap = snap

    def poll(self, now: float, events: list) -> None:
        """This frame's key presses (and the window's close button) to Commands on the inbox."""
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        import pygame

        for ev in events:
            if ev.type == pygame.QUIT:
                cmd = None if self.install else _key("quit")
            elif ev.type == pygame.KEYDOWN:
                cmd = self.command(ev)
            else:
                continue
            if cmd is not None and self.inbox is not None:
                self.inbox.put_nowait(cmd)

    def command(self, ev: Any) -> Command | None:
        """One key press to its Command (None: nothing, a locked key, the first Ctrl+Q)."""
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        import pygame

        if self.locked:
            if chord_matches(self.unlock_chord, ev):
                self.locked = False
                log.warning("keyboard unlocked by the unlock chord")
            return None
        if ev.mod & pygame.KMOD_CTRL and ev.key == pygame.K_q:
            t = time.monotonic()
            twice, self._last_ctrl_q = t - self._last_ctrl_q <= QUIT_WITHIN_S, t
            return _key("quit") if twice else None
        if ev.mod & pygame.KMOD_CTRL and ev.key == pygame.K_r:  # plain r reseeds
            return _key("reload")
        try:
            return command_for_key(ev.key, self.snap)
        except CommandError as e:  # a key the table refuses (none should): said once, never raised
            log.warning("key refused: %s", e)
            return None
