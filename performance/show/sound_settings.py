"""A scene's [voice] and [sonify] settings, validated by their owner."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from performance.show.schema import Table

VOICE_MODES = ("off", "poem", "line", "kept")
BEHIND = ("skip", "hold")
MAPPINGS = ("letters", "words", "surprise")
SCALES = {"pentatonic": (0, 2, 4, 7, 9), "major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
          "whole": (0, 2, 4, 6, 8, 10)}


@dataclass(frozen=True)
class VoiceSettings:
    """mode: speak every poem, every line as it appears, only kept poems, or nothing.
    queue: utterances that may wait; when_behind: skip (drop the oldest waiting, speak the newest)
    or hold (the stage waits for the voice). pause_waits: a timed pause waits for the voice."""

    mode: str = "off"
    queue: int = 3
    when_behind: str = "skip"
    pause_waits: bool = True
    voice: str = "en"
    rate: int = 160
    pitch: int = 45
    volume: float = 0.9
    line_pause: float = 0.35
    stanza_pause: float = 0.8
    rate_follows_temperature: bool = False

    @classmethod
    def from_table(cls, t: Table) -> VoiceSettings:
        d = cls()
        v = cls(
            mode=t.str("mode", d.mode, VOICE_MODES),
            queue=t.int("queue", d.queue, lo=1, hi=100),
            when_behind=t.str("when_behind", d.when_behind, BEHIND),
            pause_waits=t.bool("pause_waits", d.pause_waits),
            voice=t.str("voice", d.voice),
            rate=t.int("rate", d.rate, lo=60, hi=450),
            pitch=t.int("pitch", d.pitch, lo=0, hi=99),
            volume=t.float("volume", d.volume, lo=0.0, hi=1.0),
            line_pause=t.float("line_pause", d.line_pause, lo=0.0, hi=10.0),
            stanza_pause=t.float("stanza_pause", d.stanza_pause, lo=0.0, hi=10.0),
            rate_follows_temperature=t.bool("rate_follows_temperature", d.rate_follows_temperature),
        )
        t.check_unknown()
        return v

    def rate_at(self, temperature: float) -> int:
        """Words per minute; hotter text is read faster when the scene asks for it."""
        if not self.rate_follows_temperature:
            return self.rate
        return int(min(450, max(60, self.rate * (0.7 + 0.4 * min(2.0, temperature)))))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SonifySettings:
    """Every revealed token sounds. mapping: letters (first letter → scale degree), words (the
    word's hash → degree), surprise (higher for less likely tokens). Loudness and brightness follow
    surprise (−log p); temperature lifts the register and adds detuned noise."""

    enabled: bool = False
    mapping: str = "letters"
    scale: str = "pentatonic"
    base_hz: float = 220.0
    volume: float = 0.5
    length: float = 0.18

    @classmethod
    def from_table(cls, t: Table) -> SonifySettings:
        d = cls()
        s = cls(
            enabled=t.bool("enabled", bool(t.data)),
            mapping=t.str("mapping", d.mapping, MAPPINGS),
            scale=t.str("scale", d.scale, tuple(SCALES)),
            base_hz=t.float("base_hz", d.base_hz, lo=40.0, hi=2000.0),
            volume=t.float("volume", d.volume, lo=0.0, hi=1.0),
            length=t.float("length", d.length, lo=0.02, hi=2.0),
        )
        t.check_unknown()
        return s

    def to_dict(self) -> dict:
        return asdict(self)
