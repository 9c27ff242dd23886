"""A scene's pacing in beats and bars: `[pacing]` keys read beside the seconds ones (config.py).

    [pacing]
    pace = { per = "beat", words = 2 }   # or per = "bar"; chars = N with reveal = "chars"
    start = "bar"                        # a poem starts on the next bar ("beat", or "now": as in seconds)
    hold_beats = 4                       # after each poem, instead of hold (seconds)
    pause_beats = 32                     # the timed pause every pause_every poems, instead of pause_seconds
    beats_per_bar = 4
    bpm = 120                            # the tempo in seconds when no Link session or MIDI clock is heard

The beats apply while a tempo is heard (engine/tempo.py); otherwise the scene paces in seconds:
`rate`, `hold` and `pause_seconds` as written, or, where one is not written, its beat twin at `bpm`.
"""

from __future__ import annotations

from dataclasses import dataclass

from performance.show.schema import Table

PERS = ("beat", "bar")
STARTS = ("now", "beat", "bar")
BEAT_KEYS = ("pace", "start", "hold_beats", "pause_beats", "beats_per_bar", "bpm")
MAX_BEATS = 4096.0


@dataclass(frozen=True, slots=True)
class BeatPacing:
    """What a scene paces in beats. per/unit/count: `count` words (or chars) per beat or bar (per =
    None: the reveal stays in seconds); start: where a poem starts; hold/pause in beats (None: in seconds)."""

    per: str | None = None
    unit: str | None = None  # "words" | "chars"
    count: float = 1.0
    start: str = "now"
    hold_beats: float | None = None
    pause_beats: float | None = None
    beats_per_bar: int = 4
    bpm: float = 120.0

    @property
    def unit_beats(self) -> float | None:
        """Beats between two revealed units (a word or a char), or None when the reveal is in seconds."""
        if self.per is None:
            return None
        return (self.beats_per_bar if self.per == "bar" else 1) / self.count

    @property
    def start_beats(self) -> float:
        """The grid a poem start falls on, in beats (0: anywhere)."""
        return {"now": 0.0, "beat": 1.0, "bar": float(self.beats_per_bar)}[self.start]

    def seconds(self, beats: float) -> float:
        """How long `beats` last at the scene's own tempo (the fallback in seconds)."""
        return beats * 60.0 / self.bpm

    def fallback_rate(self) -> float:
        """Units per second at `bpm` (the `rate` a scene that did not write one falls back to)."""
        ub = self.unit_beats
        return max(0.1, 1.0 / self.seconds(ub)) if ub else 30.0


def beat_pacing(t: Table) -> BeatPacing | None:
    """The `[pacing]` table's beat keys, validated (None when it has none)."""
    if not any(t.has(k) for k in BEAT_KEYS):
        return None
    per = unit = None
    count = 1.0
    if t.has("pace"):
        pace = t.sub("pace")
        per = pace.str("per", None, PERS)
        if per is None:
            raise pace.error("per", None, 'is required: "beat" or "bar" (e.g. pace = { per = "beat", words = 2 })')
        units = [u for u in ("words", "chars") if pace.has(u)]
        if len(units) != 1:
            raise t.error("pace", pace.data, 'needs one of words = N or chars = N (e.g. { per = "beat", words = 2 })')
        unit = units[0]
        count = pace.float(unit, None, lo=0.01, hi=64.0)
        pace.check_unknown()
    return BeatPacing(
        per=per, unit=unit, count=count,
        start=t.str("start", "now", STARTS),
        hold_beats=t.float("hold_beats", None, lo=0.0, hi=MAX_BEATS),
        pause_beats=t.float("pause_beats", None, lo=0.0, hi=MAX_BEATS),
        beats_per_bar=t.int("beats_per_bar", 4, lo=1, hi=32),
        bpm=t.float("bpm", 120.0, lo=20.0, hi=999.0),
    )


def check_reveal(t: Table, beats: BeatPacing, reveal: str) -> None:
    """pace's unit must be what the scene reveals (words per beat need reveal = "words")."""
    if beats.unit is not None and reveal != beats.unit:
        raise t.error("reveal", reveal, f'must be "{beats.unit}" with pace in {beats.unit} '
                                        f'(or leave reveal out: pace sets it)')
