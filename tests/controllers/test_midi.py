"""MIDI through a real JACK server (jackd's dummy backend, started here): a fake controller is
another JACK MIDI client with virtual ports, Lectern's MidiController reads and answers it."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from performance.controllers.mapping import load_mapping
from performance.controllers.midi import MidiController
from performance.protocol.commands import Command

# A JACK client torn down while JACK's own thread still touched it has crashed the whole test
# process (a segfault inside rtmidi, twice in full runs): these tests run in a child process of
# their own (tests/controllers/test_midi_process.py), so such a crash fails them, not the suite.
pytestmark = pytest.mark.skipif(os.environ.get("LECTERN_MIDI_CHILD") != "1",
                                reason="run in their own process by tests/controllers/test_midi_process.py")

ROOT = Path(__file__).resolve().parents[2]
GENERIC = ROOT / "assets" / "controllers" / "generic-8x16.toml"
rtmidi = pytest.importorskip("rtmidi")


@pytest.fixture(scope="module")
def jack():
    """A private jackd (dummy audio backend, no realtime), named so it never meets another's."""
    exe = shutil.which("jackd")
    if exe is None:
        pytest.skip("jackd not installed (apt jackd2; `make setup` installs it)")
    name = f"lectern-test-{os.getpid()}"
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ.setdefault("JACK_NO_AUDIO_RESERVATION", "1")
    proc = subprocess.Popen([exe, "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    time.sleep(0.5)  # asking before jackd's socket exists only prints JACK's complaints
    while True:  # ready when a client can list ports
        try:
            probe = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="probe")
            probe.get_ports()
            probe.delete()
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"jackd did not start: {proc.stderr.read().decode(errors='replace')[-500:]}")
            time.sleep(0.1)
    yield name
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
    if old is None:
        os.environ.pop("JACK_DEFAULT_SERVER", None)
    else:
        os.environ["JACK_DEFAULT_SERVER"] = old


class FakeController:
    """A JACK MIDI client with an output port (what the controller sends) and an input port (feedback)."""

    def __init__(self, name: str = "generic ctl") -> None:
        self.name = name
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="fakectl")
        self.out.open_virtual_port(name)
        self.inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="fakectl-fb")
        self.inp.open_virtual_port(name + " fb")
        self.got: queue.Queue = queue.Queue()
        self.inp.set_callback(lambda ev, _d: self.got.put(ev[0]))

    def send(self, *data: int) -> None:
        self.out.send_message(list(data))

    def unplug(self) -> None:
        self.out.close_port()
        self.out.delete()

    def plug(self) -> None:
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="fakectl")
        self.out.open_virtual_port(self.name)

    def feedback(self, until: float = 3.0) -> list[list[int]]:
        """Every feedback message arriving within `until` s of quiet (0.3 s)."""
        out, deadline = [], time.monotonic() + until
        while time.monotonic() < deadline:
            try:
                out.append(self.got.get(timeout=0.3))
            except queue.Empty:
                if out:
                    break
        return out

    def close(self) -> None:
        """Unplug: the JACK clients go away. The input's callback runs on JACK's process thread, so
        it is taken away before the port is deleted (deleting under a running callback crashed the
        test process once in a full run)."""
        try:
            self.inp.cancel_callback()
        except Exception:
            pass
        for p in (self.out, self.inp):
            try:
                p.close_port()
                p.delete()
            except Exception:
                pass


def wait(pred, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    return pred()


def take(inbox: queue.Queue, timeout: float = 3.0) -> Command:
    return inbox.get(timeout=timeout)


@pytest.fixture
def rig(jack, tmp_path):
    ctl = FakeController()
    inbox: queue.Queue = queue.Queue()
    midi = MidiController(inbox, "generic ctl", load_mapping(GENERIC), api="jack",
                          learned_path=tmp_path / "midi-learned.toml", scene_count=lambda: 5, poll_s=0.1)
    midi.start()
    assert wait(lambda: midi.in_name and midi.out_name), "MidiController did not open the fake controller"
    time.sleep(0.1)  # JACK connects the ports on its next cycle
    yield ctl, midi, inbox
    midi.stop()
    ctl.close()


def test_cc_moves_temperature_and_note_fires_go(rig):
    ctl, midi, inbox = rig
    assert midi.in_name == "fakectl:generic ctl" and midi.out_name == "fakectl-fb:generic ctl fb"
    ctl.send(0xB0, 20, 127)  # fader 1 at the top: temperature 3.0 (range 0..3)
    cmd = take(inbox)
    assert (cmd.address, cmd.args, cmd.source) == ("/lectern/temperature", (3.0,), "midi")
    assert cmd.received is not None
    ctl.send(0xB0, 20, 64)  # exp curve: half way is a quarter of the range
    assert take(inbox).args == (pytest.approx(3.0 * (64 / 127) ** 2, abs=1e-3),)
    ctl.send(0x90, 36, 100)  # note 36: GO on press ...
    assert take(inbox).address == "/lectern/go"
    ctl.send(0x80, 36, 0)  # ... and nothing on release
    ctl.send(0x90, 44 + 2, 90)  # scene 3
    cmd = take(inbox)
    assert (cmd.address, cmd.args) == ("/lectern/scene", (3,))
    ctl.send(0xB1, 20, 5)  # the mapping's channel is 1: channel 2 is someone else's
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.3)


def test_feedback_follows_state_and_pickup_waits(rig):
    ctl, midi, inbox = rig
    # the show's state changes from elsewhere (OSC, say): LEDs and the fader's ring follow
    midi.publish_state({"temperature": 0.75, "paused": 1, "voice": 0, "volume": 0.5})
    got = ctl.feedback()
    raw_t = round((0.75 / 3.0) ** 0.5 * 127)  # exp curve inverted
    assert [0xB0, 20, raw_t] in got
    assert [0xB0, 21, 64] in got  # volume 0.5
    assert [0x90, 38, 127] in got  # the pause button's LED: paused
    midi.publish_state({"temperature": 0.75, "paused": 0, "voice": 0, "volume": 0.5})
    assert ctl.feedback() == [[0x90, 38, 0]]  # only what changed
    # soft takeover: the fader sits far from the show's temperature; moving it there changes nothing ...
    ctl.send(0xB0, 20, 10)
    ctl.send(0xB0, 20, 20)
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.3)
    # ... until it crosses the show's value: from then on it steers
    ctl.send(0xB0, 20, raw_t + 5)
    assert take(inbox).args == (pytest.approx(3.0 * ((raw_t + 5) / 127) ** 2, abs=1e-3),)
    ctl.send(0xB0, 20, 100)
    assert take(inbox).args == (pytest.approx(3.0 * (100 / 127) ** 2, abs=1e-3),)
    assert midi.counts["pickup_waits"] == 2


def test_learn_binds_a_cc_and_is_kept_for_next_time(rig, tmp_path):
    ctl, midi, inbox = rig
    ok, detail = midi.learn("/lectern/volume")  # as /lectern/learn /lectern/volume does
    assert ok, detail
    assert not midi.learn("/lectern/nonsense")[0]
    wait(lambda: midi.learn_state.startswith("learning"))
    ctl.send(0xB0, 27, 127)  # an unbound fader: now volume
    cmd = take(inbox)
    assert (cmd.address, cmd.args) == ("/lectern/volume", (1.0,))
    assert midi.learn_state == "learned cc 27 ch 1 → volume 0..1 linear"
    ctl.send(0xB0, 27, 0)
    assert take(inbox).args == (0.0,)
    # the learn key (note 43), then a command from another source names the target, then a control
    ctl.send(0x90, 43, 127)
    assert wait(lambda: midi.learn_state.startswith("armed"))
    midi.observe(Command("/lectern/reseed", source="osc"))
    assert wait(lambda: midi.learn_state.startswith("learning reseed"))
    ctl.send(0xB0, 26, 127)  # teaches; does not fire
    assert wait(lambda: midi.learn_state.startswith("learned"))
    ctl.send(0xB0, 26, 0)
    ctl.send(0xB0, 26, 127)
    assert take(inbox).address == "/lectern/reseed"
    saved = load_mapping(tmp_path / "midi-learned.toml")
    assert {(b.number, b.command) for b in saved.bindings} == {(27, "volume"), (26, "reseed")}
    # next session: the learned bindings are there without learning again
    inbox2: queue.Queue = queue.Queue()
    again = MidiController(inbox2, "generic ctl", load_mapping(GENERIC), api="jack",
                           learned_path=tmp_path / "midi-learned.toml", client="lectern2", poll_s=0.1)
    assert again.mapping.find("cc", 1, 27).command == "volume"
    assert again.mapping.find("cc", 1, 20).command == "temperature"  # the mapping file still holds


def test_controller_unplugged_and_back_is_reopened(rig, caplog):
    ctl, midi, inbox = rig
    caplog.set_level(logging.WARNING, logger="lectern.midi")
    ctl.unplug()
    assert wait(lambda: midi.in_name is None, 2.0), "the vanished port was not noticed"
    t0 = time.monotonic()
    ctl.plug()
    assert wait(lambda: midi.in_name == "fakectl:generic ctl", 2.0), "not re-opened within 2 s"
    assert time.monotonic() - t0 < 2.0
    time.sleep(0.1)
    ctl.send(0x90, 37, 100)
    assert take(inbox).address == "/lectern/back"
    lines = [r.getMessage() for r in caplog.records]
    assert sum("unplugged" in m for m in lines) == 1 and sum("re-opened" in m for m in lines) == 1


def test_no_controller_at_start_is_not_an_error(jack, caplog):
    caplog.set_level(logging.WARNING, logger="lectern.midi")
    inbox: queue.Queue = queue.Queue()
    midi = MidiController(inbox, "no such box", load_mapping(GENERIC), api="jack", client="lectern3", poll_s=0.1)
    midi.start()
    time.sleep(0.5)
    assert midi.in_name is None and midi._thread.is_alive()
    midi.stop()
    assert sum("no port matching 'no such box'" in r.getMessage() for r in caplog.records) == 1


def test_a_running_show_with_midi_and_osc(jack, tmp_path):
    """run.py play --midi: a CC moves the show's temperature (seen by an OSC subscriber), an OSC
    change moves the controller's fader (feedback), /lectern/learn over OSC is answered."""
    import socket
    import sys

    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    ctl = FakeController("show ctl")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "LECTERN_MIDI_API": "jack"}
    proc = subprocess.Popen([sys.executable, "run.py", "play", "setlists/safe.toml", "--headless", "--window", "320x180",
                             "--quiet", "--osc-port", str(port), "--midi", "show ctl", "--duration", "120",
                             "--transcript-dir", str(tmp_path)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.log", "w"))
    osc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    osc.bind(("127.0.0.1", 0))
    osc.settimeout(0.2)

    def send(address: str, *args) -> None:
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        osc.sendto(b.build().dgram, ("127.0.0.1", port))

    def collect(seconds: float) -> list[tuple[str, list]]:
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                m = OscMessage(osc.recvfrom(65536)[0])
                out.append((m.address, list(m.params)))
            except TimeoutError:
                pass
        return out

    try:
        t0 = time.monotonic()
        while not any(a == "/lectern/pong" for a, _ in collect(0.3)):
            send("/lectern/ping")
            assert proc.poll() is None and time.monotonic() - t0 < 40, (tmp_path / "stderr.log").read_text()[-1500:]
        send("/lectern/subscribe", osc.getsockname()[1])
        assert wait(lambda: "opened 'fakectl:show ctl'" in (tmp_path / "stderr.log").read_text(), 30), \
            (tmp_path / "stderr.log").read_text()[-1500:]
        time.sleep(0.2)
        # the generic map: CC 20 is the temperature (0..3, pickup): the show's 0.7 is picked up on the way
        ctl.send(0xB0, 20, 0)
        ctl.send(0xB0, 20, 127)
        assert wait(lambda: [3.0] in [v for a, v in collect(0.3) if a == "/lectern/state/temperature"], 15)
        while not ctl.got.empty():
            ctl.got.get_nowait()
        send("/lectern/temperature", 0.75)  # from OSC: the controller's fader follows
        assert [0xB0, 20, 64] in ctl.feedback(5)
        send("/lectern/learn", "/lectern/volume")
        replies = [v for a, v in collect(1.0) if a == "/lectern/reply" and v[0] == "/lectern/learn"]
        assert replies and replies[0][1] == "ok", replies
    finally:
        proc.terminate()
        proc.wait(20)
        ctl.close()


def test_midi_clock_in_gives_the_drum_machines_tempo(jack, tmp_path):
    """24 pulses a beat at 120 BPM through real JACK, Start before and Stop after: TempoStates."""
    from performance.protocol.tempo import TempoState

    ctl = FakeController("drum machine")
    inbox: queue.Queue = queue.Queue()
    midi = MidiController(inbox, "drum machine", load_mapping(GENERIC), api="jack", poll_s=0.1,
                          engine_time=lambda t: t)
    midi.start()
    try:
        assert wait(lambda: midi.in_name), "MidiController did not open the drum machine"
        time.sleep(0.1)
        ctl.send(0xFA)
        t0 = time.monotonic()
        for k in range(24 * 4):  # four beats, each pulse on its own deadline (no drift)
            time.sleep(max(0.0, t0 + k * 0.5 / 24 - time.monotonic()))
            ctl.send(0xF8)
        time.sleep(0.05)
        ctl.send(0xFC)
        got = []
        while len(got) < 200:
            try:
                got.append(inbox.get(timeout=0.5))
            except queue.Empty:
                break
    finally:
        midi.stop()
        ctl.close()
    tempos = [m for m in got if isinstance(m, TempoState)]
    assert tempos and all(m.source == "midi" for m in tempos)
    playing = [m for m in tempos if m.playing]
    assert playing[-1].bpm == pytest.approx(120, abs=3)
    assert playing[-1].beat == pytest.approx(3.75, abs=0.3)  # the last sixteenth sent while playing
    assert tempos[-1].playing is False  # Stop
    assert midi.counts["received"] == 0  # clock bytes are not controller messages
