"""Frame statistics (where the worst gaps fell, the collector's pauses) and what the runtime adds to the Snapshot."""

from __future__ import annotations

import gc

from performance.runtime.stats import FrameStats, GcPauses


def test_the_five_worst_gaps_are_kept_with_when_they_fell():
    s = FrameStats()
    t, first, frozen_at = 0.0, None, None
    for i in range(300):
        t += 1 / 60 + (0.1 * (i % 50 == 49)) + (0.4 if i == 200 else 0.0)
        s.frame(0.001, t)
        first = t if first is None else first
        frozen_at = t - first if i == 200 else frozen_at
    worst = s.summary(10, 10, None)["worst_gaps"]
    assert len(worst) == 5 and worst[0] == {"ms": round((1 / 60 + 0.4) * 1000, 1), "at_s": round(frozen_at, 2),
                                         "work_ms": 1.0}
    assert [w["ms"] for w in worst[1:]] == [round((1 / 60 + 0.1) * 1000, 1)] * 4


def test_gc_pauses_are_measured_from_the_collectors_own_callbacks():
    pauses = GcPauses()
    pauses.start()
    try:
        junk = [[i] for i in range(200_000)]  # enough objects that a full collection takes a while
        for a, b in zip(junk, junk[1:], strict=False):
            a.append(b)  # cycles, for the collector to walk
        gc.collect()
    finally:
        pauses.stop()
    out = pauses.summary()
    assert out["gc_collections"] >= 1 and out["gc_longest_ms"] > 0 and pauses not in gc.callbacks


def test_the_snapshot_names_the_voice_reading_now_live_choice_first():
    from types import SimpleNamespace

    from performance.runtime.session import Session
    from performance.show.sound_settings import VoiceSettings

    scene = SimpleNamespace(voice=VoiceSettings(mode="line", voice="piper:en_US-joe-medium"))
    s = SimpleNamespace(engine=SimpleNamespace(scene=scene), sound=SimpleNamespace(override={}))
    assert Session._speaking_voice(s) == "piper:en_US-joe-medium"
    s.sound.override["voice"] = "espeak:en"  # /lectern/voice/name espeak:en
    assert Session._speaking_voice(s) == "espeak:en"
    scene.voice = VoiceSettings(mode="off")
    assert Session._speaking_voice(s) == ""
