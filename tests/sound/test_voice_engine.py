"""The engine's side of the voice, under the simulator's fake clock: each line is handed to the
voice as written (Prepare) before the stage reveals it (Speak), with the same text."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import script_loader

from performance.protocol.actions import Prepare, Speak
from performance.show.config import load_setlist
from performance.show.sound_settings import VoiceSettings
from performance.simulate import simulate


@pytest.mark.parametrize("mode", ["line", "poem"])
def test_lines_are_prepared_before_they_are_spoken(tmp_path, mode):
    """In "poem" mode too: its first line was cold (0.3-0.8 s of synthesis when the poem ended)."""
    p = tmp_path / "set.toml"
    p.write_text('[[scene]]\nmodel = "x"\npoems = 1\nlength = { lines = 3 }\n'
                 'pacing = { reveal = "words", rate = 4, hold = 1 }\n')
    s = load_setlist(p)
    scene = replace(s.entries[0].scene, voice=VoiceSettings(mode=mode))
    s = replace(s, entries=(replace(s.entries[0], scene=scene),))
    seen: list[tuple[float, object]] = []

    def grab(now, out):
        seen.extend((now, a) for a in out.sound if isinstance(a, (Prepare, Speak)))

    simulate(s, 20, loader=script_loader, on_outbox=grab)
    prepared = {(a.line, a.text): t for t, a in seen if isinstance(a, Prepare)}
    spoken = [(t, a) for t, a in seen if isinstance(a, Speak)]
    assert len(spoken) >= 2
    for t, a in spoken:
        assert (a.line, a.text) in prepared and prepared[(a.line, a.text)] < t  # written before it was due
