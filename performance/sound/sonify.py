"""Tokens into sound: pitch from the token, loudness and brightness from its surprise, temperature
as register and detuned noise. Grains are synthesized with numpy and cached, so sounding a token
costs a dictionary lookup; the mixer only adds cached arrays into its block.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from performance.show.sound_settings import SCALES, SonifySettings

SURPRISE_LEVELS = 4
TEMP_LEVELS = 4


def degree_for(text: str, mapping: str, p: float) -> int:
    """Scale degree (0..14, two octaves of the scale) for a token."""
    word = text.strip()
    if mapping == "surprise":
        return min(14, int(-math.log(min(1.0, max(p, 1e-9))) * 2))
    if mapping == "words":
        return zlib.crc32(word.lower().encode()) % 15
    letters = [c for c in word.lower() if c.isalpha()]
    if not letters:
        return 0
    return (ord(letters[0]) - ord("a")) % 15


def temperature_level(temperature: float) -> int:
    """0..3: cool (< 0.5), warm, hot, wild (>= 1.5). Register, detune and noise follow it."""
    return max(0, min(TEMP_LEVELS - 1, int(temperature / 0.5)))


def surprise_level(p: float) -> int:
    """0..3 from −log p: likely tokens are soft and pure, surprising ones loud and bright."""
    return min(SURPRISE_LEVELS - 1, int(-math.log(min(1.0, max(p, 1e-9))) / 2.5))


def frequency(settings: SonifySettings, degree: int, temperature: float) -> float:
    """Hz for a scale degree; each temperature level lifts the register by a fifth (7 semitones)."""
    scale = SCALES[settings.scale]
    octave, step = divmod(degree, len(scale))
    register = temperature_level(temperature) * 7
    return settings.base_hz * 2 ** (octave + (scale[step] + register) / 12)


class Sonifier:
    """Caches grains by (settings, degree, surprise level, temperature level)."""

    def __init__(self, rate: int = 48000) -> None:
        self.rate = rate
        self._cache: dict[tuple, np.ndarray] = {}
        self._noise = np.random.default_rng(7).standard_normal(rate * 2).astype(np.float32)

    def grain(self, text: str, p: float, temperature: float, settings: SonifySettings) -> tuple[np.ndarray, float]:
        """(samples, frequency) for a token."""
        degree = degree_for(text, settings.mapping, p)
        surprise = surprise_level(p)
        tl = temperature_level(temperature)
        key = (settings, degree, surprise, tl)  # the frequency is a function of (settings, degree, tl)
        freq = frequency(settings, degree, temperature)
        g = self._cache.get(key)
        if g is None:
            g = self._synth(freq, surprise, tl, settings)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = g
        return g, freq

    def _synth(self, freq: float, surprise: int, tl: int, settings: SonifySettings) -> np.ndarray:
        n = int(settings.length * self.rate)
        t = np.arange(n, dtype=np.float32) / self.rate
        bright = surprise / (SURPRISE_LEVELS - 1)  # surprising tokens are louder and brighter
        wave = np.sin(2 * np.pi * freq * t) + 0.5 * bright * np.sin(2 * np.pi * 2 * freq * t) \
            + 0.3 * bright * np.sin(2 * np.pi * 3 * freq * t)
        detune = 0.004 * tl
        if detune:
            wave += 0.6 * np.sin(2 * np.pi * freq * (1 + detune) * t)
        wave += 0.08 * tl * self._noise[:n]
        attack = max(1, int(0.005 * self.rate))  # no clicks: a short attack and an exponential tail
        env = np.exp(-t * (6.0 / settings.length))
        env[:attack] *= np.linspace(0, 1, attack, dtype=np.float32)
        env[-attack:] *= np.linspace(1, 0, attack, dtype=np.float32)
        gain = settings.volume * (0.12 + 0.18 * bright)
        out = (wave * env).astype(np.float32)
        return out * (gain / max(1e-6, float(np.abs(out).max())))
