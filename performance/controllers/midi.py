"""MIDI in and out: a controller's notes and CCs become the same Commands OSC produces.

One thread ("lectern-midi") owns the rtmidi ports, the mapping, soft takeover, learn and feedback.
rtmidi queues incoming messages in C++ (no callback: with JACK a Python callback would run in
JACK's process thread and wait for the GIL, and a loaded show made JACK drop the client); the
thread takes them every POLL_MIDI_S (1 ms), and takes state snapshots from the publisher and
learn requests off its own queue in the same wait.
Accepted Commands go on the engine's inbox (source "midi"); a burst of fader values collapses to
the newest one the engine has not taken yet, as with OSC.

Hot-plug: the thread looks for the port every `poll_s`; a controller that vanishes is closed with
one log line and re-opened with one more when it returns. No controller (or no MIDI system at
all) at start is not an error: it is looked for until the show ends.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from performance.controllers.inbox import put_latest
from performance.controllers.mapping import (
    BUTTONS,
    CONTINUOUS,
    LEARNED_FILE,
    STATE_KEY,
    TOGGLES,
    Binding,
    Mapping,
    Pickup,
    learned_binding,
    load_mapping,
    message,
    parse,
    save_learned,
)
from performance.controllers.midi_clock import REALTIME, MidiClock
from performance.protocol.commands import PREFIX, Command, CommandError, validate

log = logging.getLogger("lectern.midi")
CLIENT = "lectern"
POLL_MIDI_S = 0.001  # how often rtmidi's input queue is read: at most this much added latency
SYSTEM_RETRY_S = 5.0  # no MIDI system (no ALSA sequencer, no JACK server): look again this often
FEEDBACK_QUIET_S = 0.5  # a control moved this recently gets no feedback (a motor fader must not fight a hand)


def _rtmidi_apis(name: str | None) -> list[int]:
    """'alsa' | 'jack' | ... | None (LECTERN_MIDI_API, else every compiled one in rtmidi's order)
    as the rtmidi API constants to try."""
    # lazy: the device library loads only when the device is opened; a machine without it plays on without this part
    import rtmidi

    name = (name or os.environ.get("LECTERN_MIDI_API") or "").lower()
    table = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK,
             "coremidi": rtmidi.API_MACOSX_CORE, "winmm": rtmidi.API_WINDOWS_MM}
    if not name:
        return list(rtmidi.get_compiled_api())
    if name not in table:
        raise ValueError(f"LECTERN_MIDI_API={name!r}: allowed {', '.join(table)}")
    return [table[name]]


def find_port(names: list[str], match: str, own: str = CLIENT) -> int | None:
    """Index of the first port whose name contains `match` (case-insensitive), not one of our own."""
    m = match.lower()
    for i, n in enumerate(names):
        if m in n.lower() and not n.lower().startswith(own.lower()):
            return i
    return None


class MidiController:
    """One MIDI controller: input to Commands, state to feedback, learn, hot-plug.

    inbox: the engine's queue. port: partial port name. mapping: the bindings (learned ones from
    `learned_path` are loaded over it and saved there). api: "alsa" | "jack" | None (default).
    scene_count: how many scenes the setlist has. client: our client name (as other MIDI
    software sees it)."""

    def __init__(self, inbox: queue.Queue, port: str, mapping: Mapping, *, api: str | None = None,
                 learned_path: Path | None = None, scene_count: Callable[[], int] = lambda: 1,
                 client: str = CLIENT, poll_s: float = 0.25,
                 engine_time: Callable[[float], float] | None = None) -> None:
        self.inbox = inbox
        # MIDI clock in (controllers/midi_clock.py): a drum machine's tempo when there is no Link
        self.clock = MidiClock(self._tempo, engine_time) if engine_time is not None else None
        self._last_tempo: Any = None
        self.match = port
        self.api_name = api
        self.client = client
        self.poll_s = poll_s
        self.scene_count = scene_count
        self.learned_path = learned_path
        self.learned: list[Binding] = []
        if learned_path is not None and learned_path.exists():
            try:
                self.learned = list(load_mapping(learned_path).bindings)
                log.info("MIDI: %d learned binding(s) from %s", len(self.learned), learned_path)
            except Exception as e:  # a damaged learned file must not cost the mapping
                log.error("MIDI: learned bindings in %s not loaded: %s", learned_path, e)
        self.mapping = mapping
        for b in reversed(self.learned):
            self.mapping = self.mapping.with_binding(b)
        self._q: queue.Queue = queue.Queue(maxsize=8192)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the callback thread and the MIDI thread share what follows
        self._outbox: list[list[int]] = []  # feedback waiting to be sent by the MIDI thread
        self._thread = threading.Thread(target=self._run, name="lectern-midi", daemon=True)
        self._in = self._out = None
        self.in_name: str | None = None
        self.out_name: str | None = None
        self._state: dict = {}
        self._pickups: dict[Binding, Pickup] = {}
        self._fed: dict[Binding, int] = {}  # feedback value last sent per binding
        self._moved: dict[Binding, float] = {}
        self._slots: dict[Binding, Command] = {}
        self._learn: str | None = None  # the command the next moved control is bound to
        self._armed = False  # learn key pressed: the next command from another source is the target
        self.learn_state = "off"
        self.counts = {"received": 0, "accepted": 0, "ignored": 0, "pickup_waits": 0, "feedback": 0,
                       "reopened": 0, "lost": 0, "coalesced": 0}
        self._api_error_logged = False
        self._missing_logged = False
        self._next_system_try = 0.0

    # ---- thread-safe entry points --------------------------------------------------------------
    def start(self) -> None:
        """Start the MIDI thread; returns at once (the port is looked for there)."""
        self._thread.start()

    def stop(self) -> None:
        """Close the ports and stop the thread (within about a second)."""
        self._stop.set()
        self._q.put(("stop", None))
        if self._thread.ident is not None:
            self._thread.join(2.0)

    def publish_state(self, state: dict) -> None:
        """Publisher listener: the latest snapshot (O(1); feedback is sent on the MIDI thread)."""
        try:
            self._q.put_nowait(("state", state))
        except queue.Full:
            pass

    def learn(self, target: str) -> tuple[bool, str]:
        """Start learning for `target` ("/lectern/temperature", "temperature", "scene 3", "off")."""
        name = target.strip()
        if name.startswith(PREFIX + "/"):
            name = name[len(PREFIX) + 1:]
        if name == "off":
            self._q.put(("learn", None))
            return True, "learn off"
        base = name.split(" ")[0]
        if base not in CONTINUOUS and base not in BUTTONS or base == "learn":
            return False, (f"learn: {target!r} is not a command MIDI can bind; allowed: "
                           f"{', '.join(sorted(set(CONTINUOUS) | set(BUTTONS) - {'learn'}))}")
        self._q.put(("learn", name))
        return True, f"learn {name}: move a control"

    def observe(self, cmd: Command) -> None:
        """A command from another source (key, OSC, remote): after the learn key it names the target."""
        if self._armed and cmd.source != "midi":
            name = cmd.name
            if name in ("resume",):
                name = "pause"
            if name == "scene" and cmd.args:
                name = f"scene {cmd.args[0]}"
            if name.split(" ")[0] in CONTINUOUS or name.split(" ")[0] in BUTTONS:
                self._q.put(("learn", name))

    def feed(self, data: list[int]) -> None:
        """Raw MIDI bytes as if they came from the port (rtmidi's callback calls this)."""
        received = time.monotonic()
        try:
            with self._lock:
                self._midi(list(data), received)
        except Exception:  # one odd message must not stop the controller
            log.exception("MIDI: message %s failed", data)

    # ---- the MIDI thread -----------------------------------------------------------------------
    def _run(self) -> None:
        next_poll = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + self.poll_s
                try:
                    self._ports()
                except Exception as e:
                    log.warning("MIDI: port check failed: %s", e)
            if self.in_name is not None:
                self._read_input()
            try:
                kind, item = self._q.get(timeout=POLL_MIDI_S if self.in_name is not None
                                         else max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                continue
            try:
                with self._lock:
                    if kind == "state":
                        self._state = item
                        self._feedback()
                    elif kind == "learn":
                        self._set_learn(item)
                self._flush()
            except Exception:  # one odd message must not stop the controller
                log.exception("MIDI: %s message failed", kind)
        self._close()

    def _read_input(self) -> None:
        """Everything rtmidi has queued since the last look, oldest first."""
        for _ in range(1024):
            try:
                got = self._in.get_message()
            except Exception as e:
                log.warning("MIDI: reading %r failed: %s", self.in_name, e)
                return
            if not got:
                break
            self.feed(got[0])
        if self._outbox:
            self._flush()

    def _flush(self) -> None:
        """Send the feedback queued under the lock, outside it, on this thread only: with JACK a send
        waits for the next process cycle, which runs the input callback, which may want the lock."""
        with self._lock:
            out, self._outbox = self._outbox, []
        for data in out:
            try:
                self._out.send_message(data)
                self.counts["feedback"] += 1
            except Exception as e:
                log.warning("MIDI: feedback to %r failed: %s", self.out_name, e)

    def _ports(self) -> None:
        if self._in is None:
            if time.monotonic() < self._next_system_try:
                return
            self._next_system_try = time.monotonic() + SYSTEM_RETRY_S
            # lazy: the device library loads only when the device is opened; a machine without it plays on without this part
            import rtmidi

            os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never start a JACK server behind the show's back
            errors = []
            for api in _rtmidi_apis(self.api_name):
                try:
                    self._in = rtmidi.MidiIn(api, name=self.client)
                    self._in.ignore_types(sysex=True, timing=self.clock is None, active_sense=True)
                    self._out = rtmidi.MidiOut(api, name=self.client)
                    self._api_error_logged = False
                    log.info("MIDI: using %s", rtmidi.get_api_name(api))
                    break
                except Exception as e:
                    self._in = self._out = None
                    errors.append(f"{rtmidi.get_api_name(api)}: {str(e).strip() or type(e).__name__}")
            if self._in is None:
                if not self._api_error_logged:
                    self._api_error_logged = True
                    log.warning("MIDI: no MIDI system yet (%s); looking again every %g s", "; ".join(errors),
                                SYSTEM_RETRY_S)
                return
        names = self._in.get_ports()
        if self.in_name is not None and self.in_name not in names:
            log.warning("MIDI: %r unplugged; waiting for it to come back", self.in_name)
            self.counts["lost"] += 1
            self._in.close_port()
            if self._out is not None and self.out_name is not None:
                self._out.close_port()
            self.in_name = self.out_name = None
            self._pickups.clear()
            self._fed.clear()
        if self.in_name is None:
            i = find_port(names, self.match, self.client)
            if i is None:
                if not self._missing_logged:
                    self._missing_logged = True
                    log.warning("MIDI: no port matching %r yet (have: %s); looking every %.2g s", self.match,
                                ", ".join(names) or "none", self.poll_s)
                return
            self._in.open_port(i, "in")
            self.in_name = names[i]
            reopened = self._missing_logged or self.counts["lost"] > 0
            self.counts["reopened"] += int(self.counts["lost"] > 0)
            self._missing_logged = False
            outs = self._out.get_ports()
            j = find_port(outs, self.match, self.client)
            if j is not None:
                self._out.open_port(j, "out")
                self.out_name = outs[j]
            log.warning("MIDI: %s %r%s", "re-opened" if reopened else "opened", self.in_name,
                        f" (feedback to {self.out_name!r})" if self.out_name else " (no feedback port)")
            with self._lock:
                self._feedback(force=True)
            self._flush()

    def _close(self) -> None:
        for p in (self._in, self._out):
            if p is not None:
                try:
                    p.close_port()
                    p.delete()
                except Exception:
                    pass
        self._in = self._out = None

    def _set_learn(self, name: str | None) -> None:
        self._armed = False
        self._learn = name
        self.learn_state = f"learning {name}: move a control" if name else "off"
        log.warning("MIDI learn: %s", self.learn_state)

    def _tempo(self, msg: Any) -> None:
        old, self._last_tempo = self._last_tempo, msg
        put_latest(self.inbox, msg, old)  # the newest timeline replaces one the engine has not taken

    def _midi(self, data: list[int], received: float) -> None:
        if self.clock is not None and data and data[0] in REALTIME:  # 24 a beat: not counted as messages
            self.clock.feed(data[0], received)
            return
        self.counts["received"] += 1
        msg = parse(data)
        if msg is None:
            return
        kind, channel, number, value = msg
        binding = self.mapping.find(kind, channel, number)
        if binding is not None and binding.command == "learn":
            if kind == "note" and value == 0 or kind == "cc" and value < 64:
                return
            self._armed = not self._armed and self._learn is None
            self._learn = None
            self.learn_state = "armed: give a command (key, OSC, remote), then move a control" if self._armed else "off"
            log.warning("MIDI learn: %s", self.learn_state)
            self._feedback(force=True)
            return
        if self._learn is not None and (value > 0 or kind == "cc"):
            b = learned_binding(self._learn, kind, channel, number)
            self.mapping = self.mapping.with_binding(b)
            self.learned = [x for x in self.learned if not (x.kind == b.kind and x.number == b.number
                                                            and x.channel == b.channel)] + [b]
            self._learn = None
            self.learn_state = f"learned {b.describe()}"
            log.warning("MIDI learn: %s", self.learn_state)
            if self.learned_path is not None:
                try:
                    save_learned(self.learned_path, self.learned)
                except OSError as e:
                    log.error("MIDI learn: cannot save %s: %s", self.learned_path, e.strerror)
            if not b.continuous:
                return  # the press that taught it does not also fire it
        if binding is None:
            binding = self.mapping.find(kind, channel, number)
            if binding is None:
                self.counts["ignored"] += 1
                return
        cmd = self._command(binding, value, received)
        if cmd is not None:
            self._enqueue(cmd, binding)

    def _command(self, b: Binding, value: int, received: float) -> Command | None:
        if b.continuous:
            self._moved[b] = received
            pick = self._pickups.setdefault(b, Pickup())
            if b.takeover == "pickup" and not pick.accept(value):
                self.counts["pickup_waits"] += 1
                return None
            return self._validated(b.command, (b.to_value(value),), received)
        if value == 0 or b.kind == "cc" and value < 64:  # release
            return None
        name, args = b.command, ()
        if name in TOGGLES:
            on = bool(self._state.get(TOGGLES[name], 0))
            if name == "pause":
                name = "resume" if on else "pause"
            else:
                args = (0 if on else 1,)
        elif name == "scene":
            v = b.value
            args = (min(max(1, self.scene_count()), max(1, v)) if isinstance(v, int) else v,)
        elif name == "choose":  # co-writing: the pad's candidate number
            args = (b.value,)
        return self._validated(name, args, received)

    def _validated(self, name: str, args: tuple, received: float) -> Command | None:
        """The one validation (performance.protocol.commands) every input goes through."""
        try:
            # stamped as OSC stamps its Commands (just before they go on the inbox), so the latency
            # figures of both measure the same stretch: inbox → first frame that shows it
            return validate(name, args, scene_count=self.scene_count(), source="midi", received=time.monotonic())
        except CommandError as e:
            log.warning("MIDI: %s refused: %s", name, e)
            return None

    def _enqueue(self, cmd: Command, b: Binding) -> None:
        got = put_latest(self.inbox, cmd, self._slots.get(b) if b.continuous else None)
        if got == "full":
            log.warning("MIDI: engine busy; %s dropped", cmd.address)
            return
        self.counts["coalesced" if got == "replaced" else "accepted"] += 1
        if b.continuous:
            self._slots[b] = cmd

    def _feedback(self, force: bool = False) -> None:
        s = self._state
        if not s:
            return
        now = time.monotonic()
        for b in self.mapping.bindings:
            key = STATE_KEY.get(b.command)
            if key is None or key not in s:
                if b.command == "learn":
                    self._send_feedback(b, 127 if (self._armed or self._learn) else 0, force)
                continue
            v = s[key]
            if b.continuous:
                try:
                    raw = b.to_raw(float(v))
                except (TypeError, ValueError):
                    continue
                if b.takeover == "pickup":
                    self._pickups.setdefault(b, Pickup()).follow(raw)
                if now - self._moved.get(b, -1e9) < FEEDBACK_QUIET_S:
                    continue
            else:
                raw = 127 if v else 0
            self._send_feedback(b, raw, force)

    def _send_feedback(self, b: Binding, raw: int, force: bool) -> None:
        if not b.feedback or self._out is None or self.out_name is None:
            return
        if not force and self._fed.get(b) == raw:
            return
        self._fed[b] = raw
        self._outbox.append(message(b.kind, b.channel or 1, b.number, raw))
        if threading.current_thread() is not self._thread:  # the callback: the MIDI thread sends it
            try:
                self._q.put_nowait(("flush", None))
            except queue.Full:
                pass


def learned_path_for(session_dir: Path) -> Path:
    """Where learned bindings are kept: beside the transcripts (the session folder)."""
    return Path(session_dir) / LEARNED_FILE


def list_ports() -> dict[str, dict[str, list[str]]]:
    """{api: {"inputs": [...], "outputs": [...]}} for every MIDI system that answers."""
    # lazy: the device library loads only when the device is opened; a machine without it plays on without this part
    import rtmidi

    out: dict[str, dict[str, list[str]]] = {}
    for api in rtmidi.get_compiled_api():
        name = rtmidi.get_api_name(api)
        try:
            mi, mo = rtmidi.MidiIn(api, name=CLIENT + "-list"), rtmidi.MidiOut(api, name=CLIENT + "-list")
            out[name] = {"inputs": mi.get_ports(), "outputs": mo.get_ports()}
            mi.delete()
            mo.delete()
        except Exception as e:
            out[name] = {"error": [str(e).strip() or type(e).__name__]}
    return out


def run_midi(args: argparse.Namespace) -> int:
    """`run.py midi`: the MIDI ports of every MIDI system, and the shipped mapping files."""
    try:
        ports = list_ports()
    except ImportError as e:
        print(f"MIDI unavailable: {e} (pip install python-rtmidi)")
        return 1
    for api, p in ports.items():
        if "error" in p:
            print(f"{api}: unavailable ({p['error'][0]})")
            continue
        print(f"{api}:")
        print("  inputs (controllers Lectern can read): " + (", ".join(repr(x) for x in p["inputs"]) or "none"))
        print("  outputs (feedback can go to):          " + (", ".join(repr(x) for x in p["outputs"]) or "none"))
    root = Path(__file__).resolve().parents[2] / "assets" / "controllers"
    maps = sorted(root.glob("*.toml"))
    print("mappings: " + ", ".join(str(m.relative_to(root.parents[1])) for m in maps))
    print("use: python run.py play SETLIST --midi NAME [--midi-map FILE]  (NAME: part of a port name; "
          "LECTERN_MIDI_API=alsa|jack picks the MIDI system)")
    return 0


def register_midi(sub: Any) -> None:
    """Add `run.py midi` (lists ports; imports rtmidi only when run)."""
    p = sub.add_parser("midi", help="list MIDI ports and mapping files",
                       description="List MIDI controller ports (every MIDI system) and the shipped mapping files.")
    p.set_defaults(func=run_midi)
