"""Word times read from the audio itself, for a voice that reports none (espeak-ng, pyttsx3).

The voiced part of the utterance is shared among the spoken words by their letter counts, and
each boundary then moves to the quietest 10 ms within reach (a pause between words is quieter
than the middle of one). Less exact than Piper's alignments, never out of the utterance.
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.01
SNAP_S = 0.12  # how far a boundary may move to find the gap between two words
SILENCE = 0.02  # of the loudest frame: quieter frames at the ends are not speech


def frame_energy(audio: np.ndarray, rate: int) -> np.ndarray:
    """RMS per 10 ms frame."""
    hop = max(1, int(rate * FRAME_S))
    n = len(audio) // hop
    if n == 0:
        return np.zeros(0, np.float32)
    frames = audio[:n * hop].astype(np.float32).reshape(n, hop)
    return np.sqrt((frames ** 2).mean(axis=1))


def voiced_span(audio: np.ndarray, rate: int) -> tuple[float, float]:
    """(first, last) second where the sound is louder than silence."""
    e = frame_energy(audio, rate)
    if not len(e) or e.max() <= 0:
        return 0.0, len(audio) / rate
    loud = np.nonzero(e > SILENCE * e.max())[0]
    return loud[0] * FRAME_S, (loud[-1] + 1) * FRAME_S


def estimate_words(audio: np.ndarray, rate: int, words: tuple[str, ...], owner: tuple[int, ...]
                   ) -> list[tuple[int, float, float]]:
    """(stage word, start s, end s) for each stage word that is spoken, from the audio alone."""
    if not words:
        return []
    e = frame_energy(audio, rate)
    a, b = voiced_span(audio, rate)
    lengths = [max(1, sum(c.isalpha() for c in w)) for w in words]
    total = sum(lengths)
    cuts = [a]
    acc = 0
    for i, n in enumerate(lengths[:-1]):
        acc += n
        t = a + (b - a) * acc / total
        if len(e):  # the quietest frame near the estimate is the gap between the words
            # ... but a word keeps at least half its share, and leaves the next one half of its own
            least = cuts[-1] + 0.5 * (b - a) * n / total
            most = t + 0.5 * (b - a) * lengths[i + 1] / total
            lo = max(int((t - SNAP_S) / FRAME_S), int(np.ceil(least / FRAME_S)))
            hi = min(int((t + SNAP_S) / FRAME_S) + 1, len(e), int(most / FRAME_S) + 1)
            if lo < hi:
                k = lo + int(np.argmin(e[lo:hi]))
                quiet = e[k] + SILENCE * e.max()
                while k + 1 < hi and e[k + 1] <= quiet:  # the next word starts where the gap ends
                    k += 1
                t = k * FRAME_S + (FRAME_S if k + 1 < len(e) and e[k] <= quiet and e[k + 1] > quiet else 0.0)
        cuts.append(max(t, cuts[-1]))
    cuts.append(b)
    spans: dict[int, list[float]] = {}
    for i, k in enumerate(owner):
        s = spans.setdefault(k, [cuts[i], cuts[i + 1]])
        s[0], s[1] = min(s[0], cuts[i]), max(s[1], cuts[i + 1])
    return [(k, s, t) for k, (s, t) in sorted(spans.items())]


def snap_onsets(audio: np.ndarray, rate: int, words: list[tuple[int, float, float]]
                ) -> list[tuple[int, float, float]]:
    """Piper's alignment places a word after a pause a little late (its durations are predicted
    per phoneme, the sound may begin in the pause's last frames): such a word starts where the
    audio rises out of the pause (from its quietest 5 ms, the first 5 ms louder than a tenth of the
    line's peak), never earlier than the word before ends."""
    hop = max(1, int(0.005 * rate))
    n = len(audio) // hop
    if n == 0 or not words:
        return words
    env = np.sqrt((audio[:n * hop].astype(np.float32) ** 2).reshape(n, hop).mean(axis=1))
    peak = float(env.max())
    out, prev_end = [], 0.0
    for k, a, b in words:
        if a - prev_end >= 0.04 and peak > 0:
            lo, top = int(prev_end * rate) // hop, min(n, int((a + 0.12) * rate) // hop)
            gap = max(lo + 1, int(a * rate) // hop)
            if lo < top and gap <= top:
                q = lo + int(np.argmin(env[lo:gap]))
                if env[q] <= 0.08 * peak:  # quieter than a vowel: a pause, or a soft consonant in it
                    rise = np.nonzero(env[q:top] > 0.1 * peak)[0]
                    if len(rise):
                        a = float(min(b - 0.01, max(prev_end, (q + rise[0]) * hop / rate)))
        out.append((k, a, b))
        prev_end = b
    return out
