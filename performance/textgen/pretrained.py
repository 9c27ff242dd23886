"""The pretrained kind on stage: a base (pretrained_base.py) with the poet's adapter merged in.

Sampling is Lectern's own path: the network of pretrained_net.py in the card's `cpu_precision`
(int8w by default: int8 weights, 1.7x float32's speed for 0.001 nats/char; bfloat16; float32; int8
with int8 activations too costs 0.32 nats/char), one token a step against a key/value cache, drawn by the neural
kinds' `sample_row` (temperature, top-k, top-p; one seeded numpy generator per stream, so the
same model + seed + temperatures give the same poem). Text leaves as UTF-8 is complete (a
character split over two byte tokens waits for its second half).

Guards: the brackets of the corpus marks, and the base's special tokens, are never drawn, so
"[Hopkins]" never reaches the stage; a token drawn three times running is banned for the fourth
(ban_runs, as the neural kinds); with the scene's originality guard on, each line is written
whole before it is streamed, and a line copying a corpus line (markovify's rule: originality.py)
or repeating one of the poem's own lines is drawn again from the same point (the cache cut back).
With the guard off, every token is drawn under its own temperature as it is asked for.

The scene's `prefix` (a poet: "Hopkins") is put before the prompt in the mark the model trained
with (pretrained_data.prefix_text); `set_prefix` on a stream changes it before its first token.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from performance.textgen.base import AUTO, ModelFileError, SequentialBatch, Token, XraySpec
from performance.textgen.corpus import read_corpus
from performance.textgen.neural import MAX_RUN, sample_row
from performance.textgen.originality import OriginalityGuard
from performance.textgen.pretrained_base import load_base
from performance.textgen.pretrained_data import START_ID, prefix_text
from performance.textgen.pretrained_net import Int8WeightLinear, input_dtype, quantise_linears
from performance.textgen.xray import top_of
from performance.textgen.xray_neural import _UnitStats

KIND = "pretrained"
CONTEXT = 1024  # tokens kept in the cache; past it the stream restarts from its last KEEP tokens
KEEP = 384
LINE_MAX = 48  # tokens in a line before the guard takes it as written
GUARD_TRIES = 6
GUARD_WARMING = 0.15  # each redraw of a copying line is this much warmer: at temperature 0.2 the lines alike
PRECISIONS = ("int8w", "int8", "bf16", "fp32")  # the card's cpu_precision (CUDA samples in float32)
ROOT = Path(__file__).resolve().parents[2]
_WORD = re.compile(r"[a-z']+")


def _in_precision(net, precision: str):
    """The merged network for sampling: float32, bfloat16, int8w (every linear layer's weights in
    int8 with a scale per row, activations bfloat16 in the product, the rest float32), or int8 (the
    decoder layers' linear layers dynamically quantised, activations too: 0.32 nats/char; the
    output head, untied, in bfloat16). See the bench's quality cost."""
    if precision == "int8w":
        net = net.to(dtype=torch.float32)
        quantise_linears(net.model)
        net.lm_head = Int8WeightLinear(net.lm_head)
        return net
    if precision == "int8":
        head = torch.nn.Linear(net.shape.hidden_size, net.shape.vocab_size, bias=False)
        head.weight = torch.nn.Parameter(net.lm_head.weight.detach().to(torch.bfloat16), requires_grad=False)
        net.lm_head = head
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notice: the API still works in 2.13
            net.model.layers = torch.ao.quantization.quantize_dynamic(net.model.layers, {torch.nn.Linear},
                                                                      dtype=torch.qint8)
        return net
    return net.to(dtype=torch.bfloat16 if precision == "bf16" else torch.float32)


def _byte_table(tokenizer) -> tuple[list[bytes], np.ndarray]:
    """Each token's bytes (byte-level BPE, GPT-2's byte-to-character map) and the banned ids."""
    chars = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = chars[:]
    n = 0
    for b in range(256):
        if b not in chars:
            chars.append(b)
            codes.append(256 + n)
            n += 1
    decode = {chr(c): b for b, c in zip(chars, codes, strict=True)}
    special = set(tokenizer.get_added_tokens_decoder())
    size = tokenizer.get_vocab_size()
    table, banned = [], np.zeros(size, dtype=bool)
    for i in range(size):
        piece = tokenizer.id_to_token(i) or ""
        bs = b"" if i in special else bytes(decode.get(ch, 63) for ch in piece)
        table.append(bs)
        banned[i] = i in special or b"[" in bs or b"]" in bs or not bs
    return table, banned


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class CorpusGuard:
    """The originality guard over the training corpus's lines (word ids, -1 between lines)."""

    def __init__(self, text: str) -> None:
        self.ids: dict[str, int] = {}
        out: list[int] = []
        for line in text.splitlines():
            ws = _words(line)
            if ws:
                out.extend(self.ids.setdefault(w, len(self.ids)) for w in ws)
                out.append(-1)
        self.guard = OriginalityGuard(np.array(out, dtype=np.int32))

    def copies(self, line: str, ratio: float) -> bool:
        return self.guard.copies([self.ids.get(w, -2) for w in _words(line)], ratio)


def _find_corpus(card: dict) -> CorpusGuard | None:
    """The guard, when the card's corpus is here and unchanged (else None, with one warning)."""

    c = card.get("corpus") or {}
    path = c.get("path")
    if not path:
        return None
    p = Path(path) if Path(path).is_absolute() else ROOT / path
    try:
        corpus = read_corpus(p)
    except ModelFileError:
        warnings.warn(f"corpus {path} not found: the originality guard is off", stacklevel=2)
        return None
    if corpus.sha256 != c.get("sha256"):
        warnings.warn(f"corpus {path} changed since training: the originality guard uses it as it is now", stacklevel=2)
    return CorpusGuard(corpus.text)


class PretrainedGenerator:
    """A base with the adapter merged; streams share its weights (the worker thread owns it)."""

    kind = KIND
    word_tokens = False

    def __init__(self, name: str, card: dict, base, device: str, precision: str) -> None:
        self.name, self.card, self.device, self.precision = name, card, device, precision
        self.net = _in_precision(base.net, precision).to(device)
        self.tokenizer = base.tokenizer
        self.base_config = base.config
        self.model_dir = Path(".")
        self.table, self.banned = _byte_table(base.tokenizer)
        self.prefix = str((card.get("prefix") or {}).get("default", ""))
        self.guard: CorpusGuard | None = None
        self._guard_loaded = False
        self._xray_last = None
        self._xray_auto: int | None = None

    def corpus_guard(self) -> CorpusGuard | None:
        if not self._guard_loaded:
            self._guard_loaded = True
            self.guard = _find_corpus(self.card)
        return self.guard

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids if text else []

    def start(self, seed: int, prompt: str = "") -> PretrainedStream:
        return PretrainedStream(self, seed, prompt)

    def start_batch(self, seeds: list[int], prompts: list[str] | None = None) -> SequentialBatch:
        prompts = prompts or [""] * len(seeds)
        return SequentialBatch([self.start(s, p) for s, p in zip(seeds, prompts, strict=True)])


class PretrainedStream:
    """One seeded stream with its key/value cache."""

    def __init__(self, gen: PretrainedGenerator, seed: int, prompt: str, spec: XraySpec | None = None) -> None:
        self.gen, self.prompt, self.spec = gen, prompt, spec
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.prefix = gen.prefix
        self.originality: float | None = None
        self.past: list | None = None
        self.logits = self.hidden = None
        self.ids: list[int] = []  # generated so far (the context restarts from these)
        self.pending = b""
        self.queue: list[Token] = []
        self.lines: set[str] = set()
        self.last, self.run = -1, 0
        self.unit_index: int | None = None
        self.stats = None
        self.rejected = 0
        self.new_prefix: str | None = None
        self.at_line_start = True

    def set_prefix(self, prefix: str | None) -> None:
        """The poet (or any mark; None: the card's) the stream writes under: from the first token
        when it has not started, else from its next line (the context is read again under it)."""
        prefix = self.gen.prefix if prefix is None else prefix
        if self.past is None:
            self.prefix = prefix
        elif prefix != self.prefix:
            self.new_prefix = prefix

    def set_originality(self, ratio: float | None) -> None:
        """The guard's share (None: off; then every token keeps its own temperature). On, lines are
        written whole: against the corpus when it is here, against the poem's own lines always."""
        self.originality = ratio

    @torch.inference_mode()
    def _prime(self, tail: list[int]) -> None:
        head = [START_ID, *self.gen.encode(prefix_text(self.prefix))]
        ids = head + (self.gen.encode(self.prompt) if self.past is None and not tail else []) + tail
        x = torch.tensor([ids], dtype=torch.long, device=self.gen.device)
        h, self.past = self.gen.net.hidden(x)
        self._read(h)

    def _read(self, h: torch.Tensor) -> None:
        last = h[:, -1:]
        head = self.gen.net.lm_head
        self.logits = head(last.to(input_dtype(head)))[0, -1].float().cpu().numpy()
        self.hidden = last[0, -1].float().cpu().numpy()

    @torch.inference_mode()
    def _feed(self, i: int) -> None:
        self.ids.append(i)
        if self.past[0][0].shape[2] >= CONTEXT:
            self._prime(self.ids[-KEEP:])
            return
        x = torch.tensor([[i]], dtype=torch.long, device=self.gen.device)
        h, self.past = self.gen.net.hidden(x, self.past)
        self._read(h)

    def _text(self, i: int) -> str:
        """The token's text, holding back an incomplete UTF-8 character for the next token."""
        data = self.pending + self.gen.table[i]
        for cut in range(len(data), max(-1, len(data) - 4), -1):
            try:
                text = data[:cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
            self.pending = data[cut:]
            return text
        self.pending = b""
        return data.decode("utf-8", errors="replace")

    def _draw(self, temperature: float, top_k: int, top_p: float) -> Token:
        unit = None
        if self.spec is not None:
            self.stats.add(self.hidden)
            unit = None if self.unit_index is None else float(self.hidden[self.unit_index])
        logits = self.logits.copy()
        logits[self.gen.banned] = -np.inf
        top = top_of(logits, temperature, self.spec.k, self._piece) if self.spec is not None else None
        if self.run >= MAX_RUN:
            logits[self.last] = -np.inf
        i, p = sample_row(logits, temperature, top_k, top_p, self.rng)
        self.run = self.run + 1 if i == self.last else 1
        self.last = i
        text = self._text(i)
        self._feed(i)
        return Token(text, p, temperature, top, unit)

    def _piece(self, i: int) -> str:
        return self.gen.table[i].decode("utf-8", errors="replace")

    def _write_line(self, temperature: float, top_k: int, top_p: float) -> None:
        """A whole line, drawn again (from the same cache point, a little warmer each time) while it
        copies the corpus or the poem; after GUARD_TRIES the last one stands."""
        guard = self.gen.corpus_guard()
        mark = (len(self.ids), self.past, self.logits, self.hidden, self.pending, self.last, self.run)
        for attempt in range(GUARD_TRIES):
            if attempt:  # the cache tensors are never written in place: the saved ones are the line's start
                self.rejected += 1
                n, self.past, self.logits, self.hidden, self.pending, self.last, self.run = mark
                del self.ids[n:]
            toks, warmer = [], temperature + GUARD_WARMING * attempt
            while len(toks) < LINE_MAX:
                toks.append(self._draw(warmer, top_k, top_p))
                if "\n" in toks[-1].text:
                    break
            line = " ".join(_words("".join(t.text for t in toks)))
            if not line or (line not in self.lines and (guard is None or not guard.copies(line, self.originality))):
                break
        self.lines.add(line)
        self.queue.extend(toks)

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        if self.past is None:
            self._prime([])
            if self.spec is not None:
                self._watch()
        if self.new_prefix is not None and self.at_line_start and not self.queue:
            self.prefix, self.new_prefix = self.new_prefix, None
            self._prime(self.ids[-KEEP:])
        if self.originality is None:
            tok = self._draw(temperature, top_k, top_p)
        else:
            if not self.queue:
                self._write_line(temperature, top_k, top_p)
            tok = self.queue.pop(0)
        self.at_line_start = "\n" in tok.text
        return tok

    def _watch(self) -> None:

        width = self.hidden.size
        self.stats = _UnitStats(width)
        spec, gen = self.spec, self.gen
        if spec.neuron is None:
            self.unit_index = None
        elif spec.neuron != AUTO:
            self.unit_index = min(max(0, spec.neuron), width - 1)
        else:
            last = gen._xray_last
            if last is not None and last.stats is not None and last.stats.n >= 20:
                gen._xray_auto = last.stats.most_varied()
            self.unit_index = gen._xray_auto if gen._xray_auto is not None else 0
        gen._xray_last = self

    def set_unit(self, unit: int | None) -> None:
        """Watch another unit from the next token on (the /lectern/neuron command)."""
        width = self.hidden.size if self.hidden is not None else 1 << 30
        self.unit_index = None if unit is None else min(max(0, unit), width - 1)


def open_xray(gen: PretrainedGenerator, seed: int, prompt: str, spec: XraySpec) -> PretrainedStream:
    """The kind's x-ray: top-k and confidence from the model's own distribution, a unit of the last hidden state."""
    return PretrainedStream(gen, seed, prompt, spec)


def apply_adapter_file(net, path: Path, lora: dict | None) -> None:
    """Merge DIR/model.safetensors into the base's weights: W += (alpha / rank) B A for every
    adapted projection (LoRA), or load every weight (a full fine-tune: lora None)."""
    if not path.exists():
        raise ModelFileError(f"{path}: missing (the poet's adapter)")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors' own error types for a cut or corrupt file
        raise ModelFileError(f"{path}: unreadable or truncated safetensors file ({e})") from None
    params = dict(net.named_parameters())
    with torch.no_grad():
        if lora is None:
            for k, v in tensors.items():
                if k not in params or params[k].shape != v.shape:
                    raise ModelFileError(f"{path}: tensor {k} does not fit the base")
                params[k].copy_(v.float())
            return
        scale = float(lora["alpha"]) / float(lora["rank"])
        for k, a in tensors.items():
            if not k.endswith(".lora_A.weight"):
                continue
            stem = k[: -len(".lora_A.weight")]
            b = tensors.get(stem + ".lora_B.weight")
            w = params.get(stem + ".weight")
            if b is None or w is None or (b.shape[0], a.shape[1]) != tuple(w.shape):
                raise ModelFileError(f"{path}: adapter {stem} does not fit the base")
            if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
                raise ModelFileError(f"{path}: adapter {stem} holds NaN or infinite values (corrupt)")
            w.add_((b.float() @ a.float()) * scale)


def load_pretrained(model_dir: Path, card: dict, device: str = "cpu") -> PretrainedGenerator:
    """The registry's loader: base from its ready cache, adapter merged, in the card's precision."""
    base_name = (card.get("base") or {}).get("name") or "smollm2"
    precision = str(card.get("cpu_precision", "int8w")) if device == "cpu" else "fp32"
    if precision not in PRECISIONS:
        raise ModelFileError(f"{model_dir / 'model.json'}: key 'cpu_precision' is {precision!r}; allowed: "
                             f"{', '.join(PRECISIONS)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    base = load_base(base_name, "cpu")
    if card.get("weights", "lora") != "none":
        apply_adapter_file(base.net, model_dir / "model.safetensors", card.get("lora") if card.get("weights") != "full" else None)
    if card.get("weights") == "full":
        print(f"{model_dir}: full fine-tune loaded", file=sys.stderr)
    gen = PretrainedGenerator(model_dir.name, card, base, device, precision)
    gen.model_dir = model_dir
    return gen
