"""Scene and setlist files (TOML): load, validate, and describe.

Every error is a ConfigError whose text is one line naming the file, the key, the bad value and
what is allowed. Settings blocks owned elsewhere ([look], [voice], [sonify], [install]) are
validated by their owners' `from_table`.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from performance.protocol.commands import MAX_PROMPT_CHARS  # one limit for a prompt, from OSC as from a file
from performance.safe_files import UnsafeFile, load_toml, read_text_limited
from performance.show.audience_settings import AudienceSettings
from performance.show.beats import beat_pacing, check_reveal
from performance.show.cowrite_settings import CowriteSettings
from performance.show.hours import InstallSettings
from performance.show.look import Look
from performance.show.programs import SeedProgram, TemperatureProgram
from performance.show.schema import ConfigError, Table
from performance.show.sound_settings import SonifySettings, VoiceSettings
from performance.show.timetable import parse_timetable
from performance.show.xray_settings import XraySettings
from performance.textgen import cards
from performance.textgen.kinds import NEURAL_KINDS
from performance.textgen.lengths import DEFAULT_SENTENCE_WORDS, UNITS, LengthRule
from performance.textgen.live import TrainSpec

ROOT = Path(__file__).resolve().parents[2]

MAX_LENGTH = 100_000  # words, lines, chars or sentences in one poem
LAYOUTS = ("stream", "flick", "sentence", "reader", "columns", "xray")
REVEALS = ("chars", "words", "instant")
ADVANCES = ("follow", "go")  # the older key: "follow" is continue = "auto-follow", "go" is continue = "no"
CONTINUES = ("no", "auto-continue", "auto-follow")  # cue timing as in QLab: docs/scenes-and-setlists.md
MAX_WAIT_S = 86400.0  # a pre-wait or post-wait: at most a day


@dataclass(frozen=True, slots=True)
class LengthSpec:
    """A poem length: a fixed n, or a random n in [lo, hi] drawn per poem."""

    unit: str
    lo: int
    hi: int
    max_words: int = DEFAULT_SENTENCE_WORDS  # sentences: one ends at this many words if no . ! ? came

    def rule(self, poem_key: str) -> LengthRule:
        n = self.lo if self.lo == self.hi else random.Random(f"length/{poem_key}").randint(self.lo, self.hi)
        return LengthRule(self.unit, n, self.max_words if self.unit == "sentences" else 0)

    def describe(self) -> str:
        return f"{self.lo} {self.unit}" if self.lo == self.hi else f"{self.lo}–{self.hi} {self.unit}"


@dataclass(frozen=True, slots=True)
class Pacing:
    """How text is revealed and paced. rate is units per second (chars or words); hold = seconds
    after each poem; every `pause_every` poems a timed pause of `pause_seconds` replaces the hold."""

    reveal: str = "chars"
    rate: float = 30.0
    hold: float = 2.0
    pause_every: int = 0
    pause_seconds: float = 0.0
    beats: Any = None  # show.beats.BeatPacing: pace, start, hold and pause in beats (None: seconds only)


@dataclass(frozen=True, slots=True)
class Blocklist:
    """Words a gallery or school does not want on screen; mask them or regenerate the poem."""

    words: frozenset[str] = frozenset()
    mode: str = "mask"


@dataclass(frozen=True)
class Scene:
    """One scene: which models write, how, and how it is shown and heard."""

    name: str
    file: str
    layout: str = "stream"
    models: tuple[str, ...] = ("default",)
    prompt: str = ""
    length: LengthSpec = LengthSpec("lines", 8, 8)
    poems: int | None = None
    duration: float | None = None
    temperature: TemperatureProgram = TemperatureProgram()
    seed: SeedProgram = SeedProgram()
    pacing: Pacing = Pacing()
    change_at: str = "poem"
    lookahead: int = 8
    ahead: int = 0
    fallback: str = "default"  # the model that writes while a served model's server is down
    continuation: int = 0  # served models: tokens per request (0 = lookahead)
    blocklist: Blocklist = Blocklist()
    originality: float | None = 0.7  # word chains: reject a line sharing > this share of a corpus line
    prefix: str | None = None  # pretrained kind: the prefix (a poet) its poems are written under
    look: Any = None
    voice: Any = None
    sonify: Any = None
    xray: Any = None  # stage.xray_state.XraySettings when the scene shows the x-ray
    train: Any = None  # textgen.live.TrainSpec: a trainer the scene starts (model = { train = "DIR" })
    pre_wait: float = 0.0  # seconds between the GO (or the automatic start) and the scene taking the stage
    post_wait: float = 0.0  # auto-follow: after the scene ends; auto-continue: after it starts
    cont: str | None = None  # continue = "no" | "auto-continue" | "auto-follow" (None: not given here)
    cowrite: Any = None  # show.cowrite_settings.CowriteSettings: the performer chooses words (None: off)
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class SetlistEntry:
    scene: Scene
    advance: str = "follow"  # the older key, kept in step with `cont`
    cont: str = "auto-follow"  # what happens after this scene: CONTINUES


@dataclass(frozen=True)
class Setlist:
    """An ordered list of scenes with show-control settings."""

    name: str
    file: str
    entries: tuple[SetlistEntry, ...]
    loop: bool = False
    start: int = 1
    min_go_interval: float = 0.5
    panic_fade: float = 2.0
    seed: int | None = None
    install: Any = None
    timetable: tuple = ()  # [[at]] wall-clock triggers (performance.show.timetable.AtEntry)
    monitor: int | None = None  # monitor = { display = N }: the poet's confidence monitor on display N
    midi: str | None = None  # MIDI controller port (partial name), as --midi
    midi_map: str | None = None  # mapping file (assets/controllers/*.toml), as --midi-map
    audience: Any = None  # show.audience_settings.AudienceSettings: words from the audience (None: off)

    def scene_index(self, key: int | str) -> int | None:
        """0-based index of scene number `key` (1-based) or of the scene named/filed `key`."""
        if isinstance(key, int):
            return key - 1 if 1 <= key <= len(self.entries) else None
        for i, e in enumerate(self.entries):
            if key in (e.scene.name, Path(e.scene.file).stem):
                return i
        return None


def _read_toml(path: Path) -> dict:
    try:
        return load_toml(path)
    except UnsafeFile as e:
        raise ConfigError(str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None


def _prompt(t: Table) -> str:
    v = t.str("prompt", "") or ""
    if len(v) > MAX_PROMPT_CHARS:
        raise t.error("prompt", v, f"at most {MAX_PROMPT_CHARS} characters (a prompt is a first line, not a text)")
    return v


def _length(t: Table) -> LengthSpec:
    max_words = t.int("max_words", DEFAULT_SENTENCE_WORDS, lo=1, hi=1000)
    present = [u for u in UNITS if t.has(u)]
    if len(present) != 1:
        raise ConfigError(
            f"{t.file}: table '[{t.prefix}]' needs exactly one of {', '.join(UNITS)} (e.g. length = {{ words = 88 }} "
            f"or {{ lines = [4, 12] }}), got {', '.join(present) or 'none'}"
        )
    unit = present[0]
    v = t.raw(unit)
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_LENGTH:
        lo = hi = v
    elif (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
          and 1 <= v[0] <= v[1] <= MAX_LENGTH):
        lo, hi = v
    else:
        raise t.error(unit, v, f"a whole number >= 1 (at most {MAX_LENGTH}), or [lo, hi] with 1 <= lo <= hi <= {MAX_LENGTH}")
    if t.has("max_words") and unit != "sentences":
        raise t.error("max_words", max_words, "only with sentences (the word cap of one sentence)")
    t.check_unknown()
    return LengthSpec(unit, lo, hi, max_words)


def _owned_block(kind: str, t: Table) -> Any:
    """Let the owner of a settings block validate it."""
    if kind == "look":
        return Look.from_table(t)
    if kind == "voice":
        return VoiceSettings.from_table(t)

    return SonifySettings.from_table(t)


def _xray(t: Table, layout: str) -> Any:
    """[xray] (top-k, a unit, the trace): layout "xray" always has it, stream and reader may."""
    if not t.has("xray") and layout != "xray":
        return None
    if layout not in ("xray", "stream", "reader"):
        raise t.error("xray", t.raw("xray"), 'an [xray] table needs layout "xray", "stream" or "reader"')

    return XraySettings.from_table(t.sub("xray"))


def _followed(t: Table) -> str:
    """model = { follow = "DIR" } or { train = "DIR" }: the newest checkpoint of a run, "DIR@follow"."""
    m = t.sub("model")
    keys = [k for k in ("follow", "train") if m.has(k)]
    if len(keys) != 1:
        raise t.error("model", t.raw("model"), 'a model name, or a table with one of follow = "DIR", train = "DIR"')
    d = m.str(keys[0])
    if not d or "@" in d:
        raise m.error(keys[0], d, "a model folder (no @step: it follows the newest)")
    m.check_unknown()
    if "/" in d and not Path(d).is_absolute() and not Path(d).exists():
        d = str(ROOT / d)  # a run folder named from the project root, like every shipped path
    return f"{d}@follow"


def _train(t: Table, models: list[str]) -> Any:
    """[train] with model = { train = "DIR" }: the trainer the scene starts, niced, threads capped."""
    model = t.raw("model")
    wants = isinstance(model, dict) and "train" in model
    if not t.has("train"):
        if wants:
            raise ConfigError(f'{t.file}: model = {{ train = ... }} needs a [train] table (corpus, kind, sizes, steps)')
        return None
    if not wants:
        raise t.error("train", t.raw("train"), 'a [train] table needs model = { train = "DIR" }')

    tt = t.sub("train")
    corpus = tt.str("corpus", "assets/corpora/poetry_en")
    p = Path(corpus)
    if not p.is_absolute() and not p.exists():
        p = ROOT / corpus
    if not p.exists():
        raise tt.error("corpus", corpus, "an existing corpus file or folder (relative to the project)")
    out = models[0].rpartition("@")[0]
    out_p = Path(out) if ("/" in out or Path(out).is_absolute()) else ROOT / "models" / out
    spec = TrainSpec(out=str(out_p), corpus=str(p), kind=tt.str("kind", "char-lstm", NEURAL_KINDS),
                     layers=tt.int("layers", 2, lo=1, hi=8), hidden=tt.int("hidden", 128, lo=8, hi=4096),
                     embed=tt.int("embed", 32, lo=4, hi=4096), steps=tt.int("steps", 3000, lo=1),
                     keep_every=tt.int("keep_every", 25, lo=1), batch=tt.int("batch", 32, lo=1, hi=4096),
                     seq_len=tt.int("seq_len", 128, lo=8, hi=4096), lr=tt.float("lr", 3e-3, lo=1e-6, hi=1.0),
                     threads=tt.int("threads", 1, lo=1, hi=64), nice=tt.int("nice", 10, lo=0, hi=19),
                     fresh=tt.bool("fresh", True))
    tt.check_unknown()
    return spec


def _models(t: Table, layout: str) -> list[str]:
    """model = "NAME", model = { follow/train = "DIR" } or models = [...]; several only in columns."""
    if t.has("model") and t.has("models"):
        raise t.error("models", t.raw("models"), "give either 'model' or 'models', not both")
    if t.has("models"):
        models = t.list("models", None, str)
        if not models:
            raise t.error("models", models, "a non-empty list of model names or folders")
    elif isinstance(t.raw("model"), dict):
        models = [_followed(t)]
    else:
        models = [t.str("model", "default")]
    if layout != "columns" and len(models) > 1:
        raise t.error("models", models, "several models need layout = \"columns\"")
    return models


def _pacing(pacing_t: Table) -> Pacing:
    """[pacing]: reveal, rate, hold, and the timed pause every n poems; in beats too (show/beats.py)."""
    beats = beat_pacing(pacing_t)  # None in every older file: its defaults and first errors are unchanged
    reveal = pacing_t.str("reveal", beats.unit if beats and beats.unit else "chars", REVEALS)
    if beats is not None:
        check_reveal(pacing_t, beats, reveal)
    pacing = Pacing(
        reveal=reveal,
        rate=pacing_t.float("rate", beats.fallback_rate() if beats else 30.0, lo=0.1, hi=100000.0),
        hold=pacing_t.float("hold", min(3600.0, beats.seconds(beats.hold_beats)) if beats and beats.hold_beats
                            is not None else 2.0, lo=0.0, hi=3600.0),
        pause_every=pacing_t.int("pause_every", 0, lo=0, hi=1_000_000),
        pause_seconds=pacing_t.float("pause_seconds", min(86400.0, beats.seconds(beats.pause_beats))
                                     if beats and beats.pause_beats else 0.0, lo=0.0, hi=86400.0),
        beats=beats,
    )
    if pacing.pause_every and not pacing.pause_seconds:
        raise pacing_t.error("pause_seconds", 0, "must be > 0 when pause_every is set")
    pacing_t.check_unknown()
    return pacing


def _blocklist(bl_t: Table, file: str | Path) -> Blocklist:
    """[blocklist]: words inline and/or one a line in a file (found next to the scene file, else
    from the project root; # starts a comment), and the mode."""
    words = set(w.lower() for w in (bl_t.list("words", [], str) or []))
    bl_file = bl_t.str("file", None)
    if bl_file:
        p = (Path(file).parent / bl_file) if not Path(bl_file).is_absolute() else Path(bl_file)
        if not p.exists():
            p = ROOT / bl_file
        if not p.exists():
            raise bl_t.error("file", bl_file, "no such file (relative to the scene file or the project)")
        try:
            text = read_text_limited(p)
        except (UnsafeFile, OSError) as e:
            raise bl_t.error("file", bl_file, str(e) if isinstance(e, UnsafeFile) else f"cannot read ({e.strerror})") from None
        words |= {ln.strip().lower() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")}
    blocklist = Blocklist(frozenset(words), bl_t.str("mode", "mask", ("mask", "regenerate")))
    bl_t.check_unknown()
    return blocklist


def _originality(t: Table) -> float | None:
    """originality = true (a share of 0.7), false (off) or a share 0 < x <= 1."""
    orig = t.raw("originality", True)
    if orig is True:
        return 0.7
    if orig is False:
        return None
    if isinstance(orig, int | float) and 0 < orig <= 1:
        return float(orig)
    raise t.error("originality", orig, "true (the default: a share of 0.7), false, or a share of a corpus line 0 < x <= 1")


def _cue(t: Table) -> tuple[float, float, str | None]:
    """pre_wait, post_wait (seconds) and continue: the scene's cue timing."""
    pre = t.float("pre_wait", 0.0, lo=0.0, hi=MAX_WAIT_S)
    post = t.float("post_wait", 0.0, lo=0.0, hi=MAX_WAIT_S)
    cont = t.str("continue", None, CONTINUES)
    if cont == "no" and post:
        raise t.error("post_wait", post, 'only with continue = "auto-continue" or "auto-follow" '
                                         '(with "no" the next scene waits for GO)')
    return pre, post, cont


def _cowrite(t: Table, pacing: Pacing) -> Any:
    """cowrite = { every, words, choices, wait }: the performer chooses words (reveal = "words" only)."""
    if not t.has("cowrite"):
        return None

    settings = CowriteSettings.from_table(t.sub("cowrite"))
    if pacing.reveal != "words":
        raise t.error("cowrite", t.raw("cowrite"), f'needs [pacing] reveal = "words" (this scene reveals '
                                                   f'"{pacing.reveal}"): a choice is offered word by word')
    return settings


def scene_from_dict(data: dict, file: str | Path, name_default: str) -> Scene:
    """Validate a scene table (from a file or inline in a setlist)."""
    t = Table(data, file)
    # one parser per table, called in the order the keys were always read, so the first error a
    # broken file reports is the same one
    name = t.str("name", name_default)
    layout = t.str("layout", "stream", LAYOUTS)
    models = _models(t, layout)
    length = _length(t.sub("length")) if t.has("length") else LengthSpec("lines", 8, 8)
    pacing = _pacing(t.sub("pacing"))
    blocklist = _blocklist(t.sub("blocklist"), file)
    originality = _originality(t)
    pre_wait, post_wait, cont = _cue(t)  # absent in every older file: never the first error there
    scene = Scene(
        name=name,
        file=str(file),
        layout=layout,
        models=tuple(models),
        prompt=_prompt(t),
        length=length,
        poems=t.int("poems", None, lo=1),
        duration=t.float("duration", None, lo=0.001, hi=1e7),
        temperature=TemperatureProgram.from_table(t.sub("temperature")),
        seed=SeedProgram.from_table(t.sub("seed")),
        pacing=pacing,
        change_at=t.str("change_at", "poem", ("poem", "line")),
        lookahead=t.int("lookahead", 8, lo=1, hi=4096),
        ahead=t.int("ahead", 0, lo=0, hi=16),
        fallback=t.str("fallback", "default"),
        continuation=t.int("continuation", 0, lo=0, hi=4096),
        blocklist=blocklist,
        originality=originality,
        look=_owned_block("look", t.sub("look")),
        voice=_owned_block("voice", t.sub("voice")),
        sonify=_owned_block("sonify", t.sub("sonify")),
        xray=_xray(t, layout),
        train=_train(t, models),
        pre_wait=pre_wait, post_wait=post_wait, cont=cont,
        cowrite=_cowrite(t, pacing),
        prefix=t.str("prefix", None),
        raw=data,
    )
    t.raw("description")
    t.check_unknown()
    return scene


# top-level keys only a setlist has: a file with one of them and no [[scene]] is a setlist that forgot its scenes
SETLIST_KEYS = ("scene", "scenes", "loop", "start", "min_go_interval", "panic_fade", "install", "at", "monitor",
                "midi", "midi_map", "audience")


def looks_like_setlist(data: dict) -> bool:
    return any(k in data for k in SETLIST_KEYS)


def _no_scenes(path: Path, data: dict) -> ConfigError:
    typo = " (found 'scenes': the table is [[scene]], singular)" if "scenes" in data else ""
    keys = ", ".join(repr(k) for k in SETLIST_KEYS if k in data and k not in ("scene", "scenes"))
    what = f"a setlist (it has {keys}) " if keys else "a setlist "
    return ConfigError(f"{path}: {what}needs at least one [[scene]] table (with file = \"scenes/NAME.toml\" "
                       f"or inline keys){typo}")


def load_scene(path: str | Path) -> Scene:
    path = Path(path)
    data = _read_toml(path)
    if looks_like_setlist(data):
        if isinstance(data.get("scene"), list) and data["scene"]:
            raise ConfigError(f"{path}: a setlist (it has [[scene]] tables), not a scene; play or check it as a setlist")
        raise _no_scenes(path, data)
    return scene_from_dict(data, path, path.stem)


def _resolve(ref: str, relative_to: Path) -> Path:
    for base in (relative_to.parent, ROOT):
        p = base / ref
        if p.exists():
            return p
    return relative_to.parent / ref


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def at_model_names(entries) -> set[str]:
    """The models an `[[at]]` (or OSC) `model NAME` may name: those the setlist's scenes use, and
    folders under models/ by name (no paths: a timetable never reaches outside models/)."""
    names = {m for e in entries for m in e.scene.models}
    models_dir = cards.MODELS_DIR  # read at call time: tests and tools point it elsewhere
    if models_dir.is_dir():
        names |= {d.name for d in models_dir.iterdir() if (d / "model.json").is_file()}
    return names


def _check_at_arguments(raw: Any, path: Path, entries) -> None:
    """What an `[[at]]` firing would refuse, refused when the setlist is read: a scene number
    outside the setlist (OSC clamps it; a timetable means the number it says) and a model the
    show could not name. The grammar of `do` itself is parse_timetable's."""
    if not isinstance(raw, list):
        return
    models: set[str] | None = None
    for n, item in enumerate(raw, start=1):
        do = item.get("do") if isinstance(item, dict) else None
        if not isinstance(do, str):
            continue
        name, _, rest = do.strip().partition(" ")
        name, rest = name.removeprefix("/lectern/").removeprefix("/"), rest.strip()
        t = Table(item, path, f"at[{n}]")
        if name == "scene" and rest.lstrip("-").isdigit() and not 1 <= int(rest) <= len(entries):
            raise t.error("do", do, f"no such scene; scenes: 1..{len(entries)} or a scene's name")
        if name == "model" and rest:
            models = at_model_names(entries) if models is None else models
            if rest not in models:
                raise t.error("do", do, "a model the setlist's scenes use or a folder name under models/ "
                                        f"(no paths); known: {', '.join(sorted(models))[:300]}")


def _entry(et: Table, scene: Scene, advance: str | None) -> SetlistEntry:
    """The entry's continue mode: the scene's `continue`, or the older `advance` mapped onto it
    (absent both: auto-follow, as a setlist always did)."""
    if advance is not None and scene.cont is not None:
        raise et.error("advance", advance, f"give either advance or continue (here {scene.cont!r}), not both; "
                                           'advance = "follow" is continue = "auto-follow", "go" is "no"')
    cont = scene.cont or ("no" if advance == "go" else "auto-follow")
    if cont == "no" and scene.post_wait:
        raise et.error("post_wait", scene.post_wait, 'only with continue = "auto-continue" or "auto-follow" '
                                                     '(advance = "go" waits for GO)')
    return SetlistEntry(scene, "follow" if cont == "auto-follow" else "go", cont)


def load_setlist(path: str | Path) -> Setlist:
    """Load a setlist and every scene it names; the first error stops with its one line."""
    path = Path(path)
    data = _read_toml(path)
    t = Table(data, path)
    scenes_raw = t.raw("scene")
    if not isinstance(scenes_raw, list) or not scenes_raw:
        raise _no_scenes(path, data)
    entries = []
    for i, entry in enumerate(scenes_raw, start=1):
        et = Table(entry, path, f"scene[{i}]")
        advance = et.str("advance", None, ADVANCES)
        ref = et.str("file", None)
        overrides = {k: v for k, v in entry.items() if k not in ("file", "advance")}
        if ref:
            scene_path = _resolve(ref, path)
            base = _read_toml(scene_path)
            scene = scene_from_dict(_merge(base, overrides), scene_path, scene_path.stem)
        else:
            scene = scene_from_dict(overrides, f"{path} [[scene]] #{i}", f"scene {i}")
        entries.append(_entry(et, scene, advance))
    install = None
    if t.has("install"):
        install = InstallSettings.from_table(t.sub("install"))
    timetable: tuple = ()
    if t.has("at"):
        names = [n for e in entries for n in (e.scene.name, Path(e.scene.file).stem)]
        _check_at_arguments(t.raw("at"), path, entries)
        timetable = parse_timetable(t.raw("at"), str(path), names, len(entries))
    monitor = None
    if t.has("monitor"):
        mt = t.sub("monitor")
        monitor = mt.int("display", None, lo=0, hi=15)
        if monitor is None:
            raise ConfigError(f"{path}: table 'monitor' needs display = N (0 = first screen), e.g. monitor = {{ display = 1 }}")
        mt.check_unknown()
    setlist = Setlist(
        name=t.str("name", path.stem),
        file=str(path),
        entries=tuple(entries),
        loop=t.bool("loop", False),
        start=t.int("start", 1, lo=1, hi=len(entries)),
        min_go_interval=t.float("min_go_interval", 0.5, lo=0.0, hi=3600.0),
        panic_fade=t.float("panic_fade", 2.0, lo=0.0, hi=600.0),
        seed=t.int("seed", None, lo=0, hi=2**63 - 1),
        install=install,
        timetable=timetable,
        monitor=monitor,
        midi=t.str("midi", None),
        midi_map=t.str("midi_map", None),
        audience=AudienceSettings.from_table(t.sub("audience")) if t.has("audience") else None,
    )
    t.raw("description")
    t.check_unknown()
    return setlist
