"""Text as it is read: numbers as words, no symbols spoken, each spoken word owned by its stage word;
word times matched to Piper's phoneme groups; the scene's voice settings and their pauses."""

from __future__ import annotations

import pytest
from conftest import ROOT  # noqa: F401  (puts the repository on sys.path)

from performance.show.config import ConfigError
from performance.show.schema import Table
from performance.show.sound_settings import VoiceSettings
from performance.sound.piper_voice import align
from performance.sound.speakable import say_number, speakable
from performance.sound.timing import estimate_words


@pytest.mark.parametrize("token, said", [
    ("12", "twelve"), ("105", "one hundred and five"), ("1999", "nineteen ninety-nine"),
    ("2001", "two thousand and one"), ("1905", "nineteen oh five"), ("3rd", "third"), ("21st", "twenty-first"),
    ("1970s", "nineteen seventies"), ("3.5", "three point five"), ("1,000,005", "one million and five"),
    ("word", None)])
def test_numbers_are_read_as_words(token, said):
    assert say_number(token) == said


def test_symbols_and_corpus_marks_are_never_spoken_and_words_keep_their_owner():
    sp = speakable("in 1999 the [[ 3rd ]] *star* fell — 3.5 % of __it__ & <i>so</i> ###")
    assert sp.text == "in nineteen ninety-nine the third star fell, three point five percent of it and so"
    assert not any(ch in sp.text for ch in "[]*_#<>%&—")
    stage = sp.stage_words
    assert [stage[k] for k in sp.owner] == ["in", "1999", "1999", "the", "3rd", "*star*", "fell", "3.5", "3.5",
                                           "3.5", "%", "of", "__it__", "&", "<i>so</i>"]


def test_punctuation_that_shapes_the_reading_stays():
    assert speakable("the sea, the sea; and night.").text == "the sea, the sea; and night."
    assert speakable("wait... \"now\"!").text == "wait... now!"


def test_a_group_holding_two_words_is_shared_and_times_stay_monotonic():
    # "of the" arrives as one phoneme group (espeak joins them): 4 groups for 5 words
    groups = [(0, 100, 4), (110, 400, 5), (420, 500, 2), (520, 800, 3)]
    spans = align(groups, [2, 2, 5, 2, 3])
    assert spans[0][0] == 0 and spans[1][1] == 100 and spans[0][1] == spans[1][0]
    assert spans[2] == (110, 400) and spans[-1] == (520, 800)
    assert all(a <= b for a, b in spans) and all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))


def test_words_read_from_audio_cover_the_voiced_part_in_order():
    import numpy as np

    rate = 16000
    tone = np.sin(np.arange(int(0.3 * rate)) * 0.2).astype(np.float32)
    gap = np.zeros(int(0.1 * rate), np.float32)
    long = np.sin(np.arange(int(0.5 * rate)) * 0.2).astype(np.float32)
    audio = np.concatenate([gap, tone, gap, tone, gap, long, gap])  # three "words" with gaps
    sp = speakable("one two three")
    words = estimate_words(audio, rate, sp.words, sp.owner)
    assert [k for k, _, _ in words] == [0, 1, 2]
    assert abs(words[0][1] - 0.1) < 0.02 and abs(words[-1][2] - 1.4) < 0.02
    assert abs(words[1][1] - 0.5) < 0.03 and abs(words[2][1] - 0.9) < 0.03  # boundaries found in the gaps


def test_voice_settings_validate_and_shape_pauses():
    v = VoiceSettings.from_table(Table({"voice": "piper:en_US-joe-medium", "length_scale": 1.2, "slow_lines": [0],
                                        "emphasis": ["Sea"], "line_pause": 0.4}, "s.toml", "voice"))
    assert v.length_for(0) == pytest.approx(1.2 * 1.3) and v.length_for(1) == 1.2 and v.emphasis == ("sea",)
    assert v.gap_after("the sea.", True) == pytest.approx(0.6) and v.gap_after("the sea", True) == 0.4
    assert v.gap_after("the sea,", False) == pytest.approx(v.stanza_pause)
    with pytest.raises(ConfigError, match=r"s.toml: key 'voice.voice' = .*piper:NAME"):
        VoiceSettings.from_table(Table({"voice": "festival:en"}, "s.toml", "voice"))
