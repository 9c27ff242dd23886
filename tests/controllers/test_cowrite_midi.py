"""A co-writing pad through a real JACK server (jackd's dummy backend), in the child process of
tests/controllers/test_midi_process.py as the other JACK tests (a JACK teardown race can crash a process)."""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path

import pytest
from test_midi import FakeController, jack, take, wait  # noqa: F401  (jack: the real JACK server fixture)

from performance.controllers.mapping import load_mapping

PADS = Path(__file__).resolve().parents[2] / "assets" / "controllers" / "cowrite-pads.toml"
pytestmark = pytest.mark.skipif(os.environ.get("LECTERN_MIDI_CHILD") != "1",
                                reason="run in their own process by tests/controllers/test_midi_process.py")


@pytest.mark.usefixtures("jack")
def test_a_midi_pad_through_jack_sends_choose(tmp_path):
    from performance.controllers.midi import MidiController

    ctl = FakeController("cowrite pads")
    inbox: queue.Queue = queue.Queue()
    midi = MidiController(inbox, "cowrite pads", load_mapping(PADS), api="jack",
                          learned_path=tmp_path / "midi-learned.toml", scene_count=lambda: 1, poll_s=0.1)
    midi.start()
    try:
        assert wait(lambda: midi.in_name and midi.out_name), "MidiController did not open the fake pads"
        time.sleep(0.1)  # JACK connects the ports on its next cycle
        ctl.send(0x90, 38, 100)  # pad 3 pressed ...
        cmd = take(inbox)
        assert (cmd.address, cmd.args, cmd.source) == ("/lectern/choose", (3,), "midi")
        ctl.send(0x80, 38, 0)  # ... and released: nothing
        with pytest.raises(queue.Empty):
            inbox.get(timeout=0.3)
    finally:
        midi.stop()
        ctl.close()
