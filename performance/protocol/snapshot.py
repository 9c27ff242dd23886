"""The one state snapshot: what every listener knows of the show, typed and immutable.

The runtime's publisher builds it in one place (performance.runtime.publisher.compose) from the
engine's report and the runtime's own health, once a frame at most when something changed and at
least once a second; OSC and MIDI feedback, the remote, the operator view, the monitor, the
keyboard's toggles and status.json read it, none of them the Engine. `to_dict()` is the plain
JSON form (the remote's page and MIDI's state keys; the OSC addresses in STATE below).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The show as it stands. Tuples are (number, name) or (n, of N); 0 / "" mean none."""

    scene: tuple[int, str] = (0, "")
    standby: tuple[int, str] = (0, "")
    poem: tuple[int, int] = (0, 0)
    temperature: float = 0.0
    seed: int = 0
    model: str = ""
    paused: int = 0  # 1 while paused or blacked out
    blackout: int = 0
    voice: int = 1
    volume: float = 1.0
    sonify: int = 1
    state: str = "idle"  # idle | playing | waiting_go | cue_wait | panic | ended
    override: float | None = None  # the temperature override, when one is set
    model_override: str = ""
    prompt_override: str = ""
    poems: int = 0  # poems started this session
    notice: str | None = None  # how the show is degrading, for the operator (None: it is not)
    neuron: int | None = None  # the x-ray's unit on stage (None: no x-ray)
    xray: bool = False  # the scene shows the x-ray
    served: str | None = None  # served models: "name up 64 tok/s; ..." (None: none in the set)
    next_pause: str = ""  # "pause after poem 15 (in 3), 20 s" (the monitor)
    awaiting_tokens: bool = False  # a poem on stage waits for tokens the worker owes it (the watchdog)
    errors: tuple[str, ...] = ()  # the engine's latest error lines (models failing, falling back)
    # cue timing (engine/cues.py): what plays, what starts by itself next, and when
    running: tuple[int, str] = (0, "")  # the scene on stage now ((0, "") during a wait, after panic, ...)
    next_auto: tuple[int, str] = (0, "")  # the scene that starts by itself next ((0, "") when GO must)
    cue_wait: str = ""  # the wait counting now: "pre_wait" | "post_wait" | ""
    countdown: float | None = None  # seconds to that automatic start (None: none, or not known ahead)
    continue_mode: str = "auto-follow"  # the current scene's continue: no | auto-continue | auto-follow
    # edits while the show runs (engine/reload.py): the last reload, and a refused file's one line
    reload: str = ""  # "setlists/x.toml 1a2b3c4d waits for the next poem" | "... in effect since 12.5 s"
    reload_error: str = ""  # the last edit that was refused (file, key, value, allowed); "" once one is taken
    # co-writing (engine/cowrite.py): the candidates on stage for the next word, and seconds left to choose
    offer: tuple[str, ...] = ()
    offer_left: float | None = None
    tempo: str = ""  # the shared tempo: "link 120.0 BPM · bar 3 beat 2/4 · 1 peer" (engine/tempo.py; "" none)
    # the runtime's own
    health: tuple[float, float, int, int, float] = (0.0, 0.0, 0, 0, 0.0)  # uptime_s, fps, poems, restarts, rss_mb
    tokens: int = 0  # tokens the worker has written (the operator view's rate)
    audience: str = ""  # words from the audience: "on" | "off" ("" the setlist has no [audience]; engine/audience.py)
    speaking_voice: str = ""  # the voice reading now: "piper:en_US-joe-medium" (a live /lectern/voice/name, or the scene's)
    next_at: tuple[str, ...] = ()  # the [[at]] timetable's next firings
    warnings: tuple[str, ...] = ()  # the runtime's lasting warnings (no sound, no OSC, ...)
    open: bool = True  # within the installation's opening hours
    next_change: str | None = None  # when the hours next open or close (ISO time)
    setlist: str = ""
    controllers: dict[str, str] = field(default_factory=dict)  # what controllers report: midi, learn, remote

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as the remote's page, MIDI feedback and the OSC state read them (the
        controllers' reports sit at the top level, as they always have)."""
        out = asdict(self)
        out.update(out.pop("controllers"))
        if self.served is None:
            out.pop("served")
        return out

    def cue_text(self, clock: bool = False) -> str:
        """The next automatic start in words: "next 2 b in 6 s (post-wait)", "next 2 b when this
        scene ends", or "" (GO starts the next). clock: the seconds as m:ss (the monitor)."""
        n, name = self.next_auto
        if not n:
            return ""
        if self.countdown is None:
            return f"next {n} {name} when this scene ends"
        secs = max(0, math.ceil(self.countdown - 1e-9))
        left = f"{secs // 60}:{secs % 60:02d}" if clock else f"{secs} s"
        return f"next {n} {name} in {left}" + (f" ({self.cue_wait.replace('_', '-')})" if self.cue_wait else "")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The field names (a controller's feedback may follow any of them)."""
        return tuple(f.name for f in fields(cls))


# OSC state addresses: (address, argument types, what it says) — from the fields above
STATE = [
    ("state/scene", "i s", "scene number and name"),
    ("state/standby", "i s", "scene standing by (0 = none)"),
    ("state/poem", "i i", "poem n, of N (0 = open-ended)"),
    ("state/temperature", "f", "current temperature"),
    ("state/seed", "i", "current seed"),
    ("state/model", "s", "current model"),
    ("state/model_override", "s", "model set by /lectern/model (\"\" = none: the scene's)"),
    ("state/prompt_override", "s", "prompt set by /lectern/prompt (\"\" = none: the scene's)"),
    ("state/paused", "i", "1 while paused or blacked out"),
    ("state/voice", "i", "speech on"),
    ("state/volume", "f", "master volume"),
    ("state/health", "f f i i f [s]", "uptime_s, fps, poems, restarts, rss_mb[, served models: up N tok/s | down (why)]"),
    ("state/speaking_voice", "s", "the voice reading now, e.g. piper:en_US-joe-medium (\"\" = the scene has none)"),
    ("state/reload_error", "s", "the last edit of a scene or setlist that was refused, in one line (\"\" = none)"),
]
