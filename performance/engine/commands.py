"""The engine-owned commands: one small handler each, found by the command table's name.

A handler gets the engine, the time and the validated `Command`, changes the show, and returns
`(applied, detail)`: the detail is the reply a controller shows and the transcript's `command`
event keeps. Arguments arrive checked and clamped by `performance.protocol.commands.validate`;
the bounds come from the same table (`spec.clamp`), so they exist once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from performance.protocol.actions import Keep, SoundCtl, Speak, VoiceCtl
from performance.protocol.commands import TABLE, Command
from performance.protocol.worker import Neuron, Prefix
from performance.show.programs import session_seed_draw
from performance.textgen.lengths import trim_poem

# the handlers are called with the Engine (performance.engine.core), which imports this module:
# named here without importing it, so no circle exists even for a type checker
Engine = Any

Result = tuple[bool, str]
Handler = Callable[[Engine, float, Command], Result]
HANDLERS: dict[str, Handler] = {}


def handles(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for engine-owned commands of the table."""

    def register(fn: Handler) -> Handler:
        for name in names:
            assert TABLE[name].owner == "engine", f"{name} is not an engine command"
            HANDLERS[name] = fn
        return fn

    return register


def run_command(engine: Engine, now: float, cmd: Command) -> Result:
    """Apply one command through its handler; unknown names are refused, never raised."""
    handler = HANDLERS.get(cmd.name)
    if handler is None:
        return False, f"unknown command {cmd.address}"
    return handler(engine, now, cmd)


@handles("go")
def go(e: Engine, now: float, cmd: Command) -> Result:
    """GO: start the scene standing by; from a wait or after panic at once, else at the boundary;
    a scene with a pre-wait starts when it runs out, and GO during a pre-wait skips it."""
    if now - e.last_go < e.setlist.min_go_interval:
        return False, f"GO refused: less than {e.setlist.min_go_interval:g} s since the last GO"
    e.last_go = now
    target = e.standby
    if target is None:
        return False, "nothing stands by (end of the setlist)"
    if e.state == "panic":
        e._emit(now, "resume")
        e._out.sound.append(SoundCtl("resume"))
    cued = e._go_cue(now, target)  # a pre-wait skipped or begun (cues.py)
    if cued is not None:
        return True, cued
    if e.state in ("panic", "waiting_go", "ended", "cue_wait"):
        e._start_scene(now, target)
        return True, f"scene {target + 1} {e.scene.name}"
    e.pending_change = target
    e._emit_standby(now)
    return True, f"scene {target + 1} at the next {e.scene.change_at}"


@handles("back")
def back(e: Engine, now: float, cmd: Command) -> Result:
    e._cancel_wait(now, "back")
    return e._jump(now, max(0, e.scene_idx - 1))


@handles("scene")
def scene(e: Engine, now: float, cmd: Command) -> Result:
    idx = e.setlist.scene_index(cmd.args[0] if cmd.args else 0)
    if idx is None:
        return False, f"no scene {cmd.args[0]!r} (1..{len(e.setlist.entries)} or a scene name)"
    e._cancel_wait(now, "scene")
    return e._jump(now, idx)


@handles("pause")
def pause(e: Engine, now: float, cmd: Command) -> Result:
    if not e.paused:
        e.paused, e.paused_at = True, now
    return True, "paused"


@handles("resume")
def resume(e: Engine, now: float, cmd: Command) -> Result:
    if e.blacked_out:
        e.blacked_out = False
        e._emit(now, "resume")
        e._out.sound.append(SoundCtl("resume"))
    if e.paused:
        e._shift(now - e.paused_at)
        e.paused = False
    return True, "resumed"


@handles("panic")
def panic(e: Engine, now: float, cmd: Command) -> Result:
    e._emit(now, "panic", fade_s=e.setlist.panic_fade)
    e._out.sound.append(SoundCtl("panic", e.setlist.panic_fade))
    w = e._cancel_wait(now, "panic")  # every pending wait: nothing starts by itself
    if w is not None:
        e.pending_change = w.target  # GO resumes with the cue that was waiting
    e._stop_scene(now)
    e.state = "panic"
    e.paused = False
    return True, "panic: fading to black; GO resumes with the scene standing by"


@handles("blackout")
def blackout(e: Engine, now: float, cmd: Command) -> Result:
    if not e.blacked_out:
        e.blacked_out = True
        e._emit(now, "blackout")
        e._out.sound.append(SoundCtl("blackout"))
        if not e.paused:
            e.paused, e.paused_at = True, now
    return True, "blackout"


@handles("temperature")
def temperature(e: Engine, now: float, cmd: Command) -> Result:
    e.override = TABLE["temperature"].clamp(cmd.args[0])
    e.current_temperature = e.override
    return True, f"temperature {e.override:g}"


@handles("temperature/release")
def temperature_release(e: Engine, now: float, cmd: Command) -> Result:
    e.override = None
    return True, "temperature follows the scene"


@handles("seed", "reseed")
def seed(e: Engine, now: float, cmd: Command) -> Result:
    """A new poem at once: with the seed given, or the session's next fresh draw."""
    if cmd.name == "seed":
        value = int(cmd.args[0])
    else:
        e.seed_draws += 1
        value = session_seed_draw(e.session_seed, e.seed_draws)
    e.next_seed = value
    e._restart_poems(now)  # may take next_seed: say the seed asked for, not what is left
    return True, f"seed {value}"


@handles("model")
def model(e: Engine, now: float, cmd: Command) -> Result:
    known = e._osc_models()
    name = str(cmd.args[0])
    if name not in known:  # by name only: no path, and no hint of which folders exist
        return False, f"unknown model {name[:60]!r}; known: {', '.join(sorted(known))}"
    e.model_override = name
    return True, f"model {name} from the next poem"


@handles("model/release")
def model_release(e: Engine, now: float, cmd: Command) -> Result:
    was, e.model_override = e.model_override, None
    return True, "model follows the scene" + (f" (was {was})" if was else "")


@handles("prompt")
def prompt(e: Engine, now: float, cmd: Command) -> Result:
    e.prompt_override = str(cmd.args[0])
    return True, "prompt set for the next poem"


@handles("prefix")
def prefix(e: Engine, now: float, cmd: Command) -> Result:
    """The pretrained kind's poet: open streams take it from their next line, new poems from the start."""
    e.prefix_override = str(cmd.args[0]).strip() or None
    e._out.worker.append(Prefix(e.prefix_override))
    return True, f"prefix {e.prefix_override!r}" if e.prefix_override else "prefix follows the scene"


@handles("prompt/release")
def prompt_release(e: Engine, now: float, cmd: Command) -> Result:
    e.prompt_override = None
    return True, "prompt follows the scene"


@handles("speed")
def speed(e: Engine, now: float, cmd: Command) -> Result:
    e.speed = TABLE["speed"].clamp(cmd.args[0])
    return True, f"speed {e.speed:g}"


@handles("voice")
def voice(e: Engine, now: float, cmd: Command) -> Result:
    e.voice_on = bool(int(cmd.args[0]))
    if not e.voice_on:
        e._out.sound.append(SoundCtl("cancel"))
    return True, f"voice {int(e.voice_on)}"


@handles("voice/name", "voice/rate", "voice/variation")
def voice_setting(e: Engine, now: float, cmd: Command) -> Result:
    """The voice chosen live; the sound system applies it from the next line spoken."""
    if cmd.name == "voice/name":
        name = str(cmd.args[0]).strip()
        kind, colon, rest = name.partition(":")
        if colon and (kind not in ("piper", "espeak") or not rest.strip()):
            return False, f"voice {name!r}: use piper:NAME (e.g. piper:en_US-joe-medium or a path), espeak:LANG or ''"
        e._out.sound.append(VoiceCtl("voice", name or None))
        return True, f"voice {name}" if name else "voice: the scenes' own"
    spec = TABLE[cmd.name]
    value = round(spec.clamp(cmd.args[0]), 4)  # OSC floats are 32-bit: 1.4 arrives as 1.39999998
    if cmd.name == "voice/rate":
        value = None if value <= 0 else max(0.3, value)
    e._out.sound.append(VoiceCtl("length_scale" if cmd.name == "voice/rate" else "variation", value))
    return True, f"{cmd.name} {'released' if value is None else f'{value:g}'}"


@handles("sonify")
def sonify(e: Engine, now: float, cmd: Command) -> Result:
    e.sonify_on = bool(int(cmd.args[0]))
    return True, f"sonify {int(e.sonify_on)}"


@handles("volume")
def volume(e: Engine, now: float, cmd: Command) -> Result:
    e.volume = TABLE["volume"].clamp(cmd.args[0])
    e._out.sound.append(SoundCtl("volume", e.volume))
    return True, f"volume {e.volume:g}"


@handles("keep")
def keep(e: Engine, now: float, cmd: Command) -> Result:
    """The poem the audience sees now, to harvest.txt: its whole text where the worker wrote it
    (revealed or not yet), marked partial where it is not finished. The disk's owner answers."""
    poem = e._on_screen()
    if poem is None:
        return False, "no poem on screen to keep yet"
    pending = [*poem.word_hold, *poem.received]
    written = poem.text + "".join(tok.text for tok, _ in pending)
    temps = poem.temps + [tok.temperature for tok, _ in pending]
    partial = not poem.done or poem.cut
    text = trim_poem(written)
    if not text.strip():
        return False, f"poem {poem.n} has no text yet"
    footer = e._footer(poem, temps) + (" · (partial)" if partial else "")
    e._emit(now, "keep", poem=poem.n, partial=partial)
    e._out.files.append(Keep(poem.n, text, footer, reply=cmd.reply))
    v = e.scene.voice
    if v is not None and getattr(v, "mode", "off") == "kept" and e.voice_on:
        lines = [ln for ln in trim_poem(poem.text).split("\n") if ln.strip()]
        for i, line in enumerate(lines):  # numbered by non-blank lines, as the stage highlights them
            e._out.sound.append(Speak(poem.n, i, line.strip(), v, e.current_temperature))
    return True, f"kept poem {poem.n}"


@handles("neuron")
def neuron(e: Engine, now: float, cmd: Command) -> Result:
    if e.scene.xray is None:
        return False, "this scene shows no x-ray (layout \"xray\" or an [xray] table)"
    e.neuron_override = e.neuron_shown = max(0, int(cmd.args[0]))
    e._out.worker.append(Neuron(e.neuron_override))
    e._emit(now, "neuron", unit=e.neuron_override)
    return True, f"unit {e.neuron_override}"


@handles("caption")
def caption(e: Engine, now: float, cmd: Command) -> Result:
    e.caption = (not e._caption_on()) if not cmd.args else bool(int(cmd.args[0]))
    e._emit(now, "caption", on=e.caption)
    return True, f"caption {int(e.caption)}"
