"""The spoken word lit on the stage: a line spoken by the real Piper voice, its words' times in a
speech event, and at a given engine time the lit pixels are the word the audio has then."""

from __future__ import annotations

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
import pygame  # noqa: E402
import pytest  # noqa: E402
from conftest import ROOT  # noqa: E402, F401  (puts the repository on sys.path)

from performance.show.look import Look  # noqa: E402
from performance.sound.piper_voice import SHIPPED, PiperSpeaker, seed_for  # noqa: E402
from performance.sound.speakable import speakable  # noqa: E402
from performance.sound.timing import FRAME_S, frame_energy  # noqa: E402
from performance.stage.draw import StageRenderer  # noqa: E402
from performance.stage.view import StageState  # noqa: E402

W, H = 960, 540
LINE = "the grey sea walks slowly over 12 old lights"
GREEN = (0, 255, 0)
START = 2.0  # engine time the line starts in the mix


@pytest.fixture(scope="module")
def spoken():
    sp = speakable(LINE)
    return PiperSpeaker(SHIPPED, threads=1).speak(sp, seed=seed_for(sp.text, 1.0, 0.667))


def stage(words) -> StageState:
    s = StageState()
    look = Look(highlight="#ff0000", color="#ffffff", spoken_word="#00ff00", size=40).to_dict()
    s.apply({"t": 0.0, "event": "scene", "n": 1, "name": "s", "layout": "reader", "look": look,
             "columns": [{"model": "m"}], "caption": False})
    s.apply({"t": 0.0, "event": "poem_start", "n": 1, "model": "m", "seed": 1, "column": 0, "temperature": 0.7})
    s.apply({"t": 0.5, "event": "token", "poem": 1, "text": LINE + "\n", "temperature": 0.7, "p": 0.5, "column": 0})
    s.apply({"t": 1.9, "event": "speech", "poem": 1, "line": 0, "start": START, "end": START + 3.5,
             "words": [[k, START + a, START + b] for k, a, b in words]})
    return s


def green_columns(surf: pygame.Surface) -> np.ndarray:
    arr = pygame.surfarray.pixels3d(surf).astype(int)
    mask = (arr[:, :, 1] > 150) & (arr[:, :, 0] < 90) & (arr[:, :, 2] < 90)
    return mask.any(axis=1).nonzero()[0]


def test_the_word_lit_at_a_time_is_the_word_the_audio_has_then(spoken):
    s = stage(spoken.words)
    r = StageRenderer((W, H))
    stage_words = LINE.split()
    e = frame_energy(spoken.audio, spoken.rate)
    for k, a, b in spoken.words:
        # the loudest 10 ms of word k's interval: the audio is plainly saying that word then
        lo = int(np.ceil(a / FRAME_S))  # frames wholly inside the interval
        i = lo + int(np.argmax(e[lo:int(b / FRAME_S)]))
        assert e[i] > 0.3 * e.max()
        t = START + (i + 0.5) * FRAME_S
        lit = [p for p in r.place(s.frame(t)) if p.rgb == GREEN]
        assert [p.text for p in lit] == [stage_words[k]], (k, t)
        surf = pygame.Surface((W, H))
        r.draw(surf, s.frame(t))
        cols = green_columns(surf)
        x0, x1 = lit[0].x, lit[0].x + r.fonts.width(lit[0].font, lit[0].size, lit[0].text)
        assert len(cols) and x0 - 2 <= cols.min() and cols.max() <= x1 + 2, (k, cols.min(), cols.max(), x0, x1)


def test_nothing_is_lit_before_the_line_is_spoken_nor_after(spoken):
    s = stage(spoken.words)
    r = StageRenderer((W, H))
    for t in (START - 0.5, START + 3.6):
        surf = pygame.Surface((W, H))
        r.draw(surf, s.frame(t))
        assert len(green_columns(surf)) == 0
