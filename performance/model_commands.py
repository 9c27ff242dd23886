"""`run.py train`, `run.py sample`, `run.py bench`: the model commands."""

from __future__ import annotations

import argparse
import json
import random
import sys
import warnings
from pathlib import Path

from performance.textgen.base import ModelFileError, ServedError
from performance.textgen.cards import read_card, resolve_model_dir
from performance.textgen.kinds import TRAINABLE as KINDS
from performance.textgen.kinds import kind


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a corpus",
                       description="Train a model on a corpus (a text file, or a folder of .txt files).")
    p.add_argument("corpus", type=Path, metavar="CORPUS")
    p.add_argument("--kind", required=True, choices=KINDS, metavar="KIND", help=" | ".join(KINDS))
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="model folder to write")
    p.add_argument("--resume", action="store_true", help="continue from DIR's training state")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--init-from", metavar="MODEL",
                   help="neural kinds: start from this model's weights and vocabulary (same kind and sizes)")
    g = p.add_argument_group("network (neural kinds)")
    g.add_argument("--layers", type=int, default=2, help="layers (default 2)")
    g.add_argument("--hidden", type=int, default=256, help="hidden size / model width (default 256)")
    g.add_argument("--embed", type=int, default=64, help="embedding size, recurrent kinds (default 64)")
    g.add_argument("--heads", type=int, default=4, help="attention heads, transformer kinds (default 4)")
    g.add_argument("--context", type=int, default=256,
                   help="context length, transformer kinds: set to --seq-len, the window it trains on")
    g.add_argument("--dropout", type=float, default=None,
                   help="dropout (transformers, default 0.1); recurrent kinds: locked dropout on the output "
                        "(default 0.1 char, 0.4 word)")
    g.add_argument("--tie", action="store_true", help="tie input and output embeddings")
    g.add_argument("--positions", choices=("rope", "learned"), default="rope",
                   help="transformer kinds: rotary positions (default) or a learned position table")
    g.add_argument("--max-vocab", type=int, default=30000, help="word kinds: vocabulary size cap (default 30000)")
    _add_recipe_arguments(p)
    g = p.add_argument_group("WaveNet (char-wavenet; --seq-len, --batch, --lr, --steps as above)")
    g.add_argument("--wn-residual", type=int, help="residual channels (default 48)")
    g.add_argument("--wn-dilation-channels", type=int, help="channels of the gated dilated convolutions (default 32)")
    g.add_argument("--wn-skip", type=int, help="skip channels (default 96)")
    g.add_argument("--wn-max-dilation", type=int, help="the dilation cycle 1, 2, 4 ... up to this (default 256)")
    g.add_argument("--wn-cycles", type=int, help="times the dilation cycle repeats (default 2)")
    g.add_argument("--wn-explode", type=float,
                   help="a loss above this many times the running loss ends the run as dead (default 3)")
    # lazy: `run.py --help` imports this module; the pretrained kind's options load with the train command
    from performance.textgen.pretrained_cli import add_arguments as add_pretrained_arguments

    add_pretrained_arguments(p)
    g = p.add_argument_group("markov")
    g.add_argument("--order", type=int, default=2, choices=(1, 2, 3), help="n-gram order (default 2)")
    p.set_defaults(func=run_train)


def _add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """`run.py train`'s regularisation and optimisation options (neural kinds)."""
    g = p.add_argument_group("AWD-LSTM regularisation (recurrent kinds: lstm, gru, qrnn; 0 turns one off)")
    g.add_argument("--wdrop", type=float, help="DropConnect on hidden-to-hidden weights (default 0.5)")
    g.add_argument("--dropoute", type=float, help="embedding dropout, whole rows (default 0 char, 0.1 word)")
    g.add_argument("--dropouti", type=float, help="locked dropout on the embedding output (default 0.1 char, 0.4 word)")
    g.add_argument("--dropouth", type=float, help="locked dropout between layers (default 0.25)")
    g.add_argument("--alpha", type=float, help="activation regularisation, AR (default 2)")
    g.add_argument("--beta", type=float, help="temporal activation regularisation, TAR (default 1)")
    g.add_argument("--nt-asgd", type=int, metavar="N",
                   help="average the weights once validation is worse than the best before the last N "
                        "evaluations (NT-ASGD; default 5, 0 = never)")
    g = p.add_argument_group("optimisation (neural kinds)")
    g.add_argument("--seq-len", type=int, default=128, help="training sequence length (default 128)")
    g.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    g.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    g.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3; cosine schedule)")
    g.add_argument("--eval-every", type=int, default=100, help="validate every N steps (default 100)")
    g.add_argument("--eval-batches", type=int, default=0,
                   help="validate on N random batches (default 0: the whole validation split)")
    g.add_argument("--weight-decay", type=float,
                   help="AdamW weight decay on matrices only (default 0.1 transformers, 0 recurrent)")
    g.add_argument("--save-every", type=int, default=500, help="save training state every N steps (default 500)")
    g.add_argument("--keep-every", type=int, default=0, metavar="N",
                   help="also keep every Nth step (and step 0) as DIR/step-NNNNNN/, a model of its own: "
                        "vintages DIR@N, live training on stage (default 0: none)")
    g.add_argument("--patience", type=int, default=8, help="early stop after N validations without improvement")
    g.add_argument("--max-minutes", type=float,
                   help="time budget: warm-up and cosine decay end with it, then a final evaluation; "
                        "the best weights are kept")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: CUDA when present)")


def run_train(args: argparse.Namespace) -> int:
    # lazy: `run.py --help` imports this module; what the command needs loads when it runs
    from performance.textgen.corpus import read_corpus

    try:
        corpus = read_corpus(args.corpus)
        try:
            print(kind(args.kind).function("train")(corpus, args))
        except KeyboardInterrupt:
            return 130
        return 0
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def register_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="print text from a model",
                       description="Print text from a model. MODEL is a folder or a name under models/.")
    p.add_argument("model", metavar="MODEL")
    n = p.add_mutually_exclusive_group()
    n.add_argument("--words", type=int, help="stop after N words (default: 88 words)")
    n.add_argument("--chars", type=int, help="stop after N characters")
    n.add_argument("--lines", type=int, help="stop after N lines")
    n.add_argument("--sentences", type=int, help="stop at the end of the Nth sentence")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = always the likeliest token; default 0.8")
    p.add_argument("--top-k", type=int, default=0, help="sample from the K likeliest tokens only (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: smallest set with probability P")
    p.add_argument("--seed", type=int, default=None, help="same model + seed + settings = same text (default: random)")
    p.add_argument("--prompt", default="", help="text to start from (unknown characters/words are dropped with a warning)")
    p.add_argument("--stream", action="store_true", help="print tokens as they come")
    p.add_argument("--prefix", help="pretrained models: the poet's mark to write under, e.g. Hopkins")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                   help="neural kinds: where the model runs (default cpu; auto: CUDA when present)")
    p.set_defaults(func=run_sample)


def _device(name: str) -> str:
    """--device auto: CUDA when present."""
    if name != "auto":
        return name
    # lazy: this pulls in torch (~1.5 s); only the paths that run a neural model pay for it
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_sample(args: argparse.Namespace) -> int:
    # lazy: this pulls in torch (~1.5 s); only the paths that run a neural model pay for it
    from performance.textgen import load_model
    from performance.textgen.lengths import LengthCounter, LengthRule, trim_poem
    from performance.textgen.threads import use_sampler_threads

    use_sampler_threads()

    if args.temperature < 0 or not 0 < args.top_p <= 1 or args.top_k < 0:
        print("error: --temperature must be >= 0, --top-p in (0, 1], --top-k >= 0", file=sys.stderr)
        return 2
    for unit in ("words", "chars", "lines", "sentences"):
        v = getattr(args, unit)
        if v is not None and v < 1:
            print(f"error: --{unit} {v}: must be >= 1", file=sys.stderr)
            return 2
    unit, n = next(((u, getattr(args, u)) for u in ("words", "chars", "lines", "sentences") if getattr(args, u)),
                   ("words", 88))
    try:
        gen = load_model(args.model, device=_device(args.device))
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, *a, **k: f"warning: {msg}\n"
    stream = gen.start(seed, args.prompt)
    if args.prefix is not None and hasattr(stream, "set_prefix"):
        stream.set_prefix(args.prefix)
    counter = LengthCounter(LengthRule(unit, n), bool(getattr(gen, "word_tokens", False)))
    text = ""
    try:
        while True:
            tok = stream.next(args.temperature, args.top_k, args.top_p)
            text += tok.text
            if args.stream:
                sys.stdout.write(tok.text)
                sys.stdout.flush()
            if counter.feed(tok.text):
                break
    except ServedError as e:  # a served model's server down, slow or talking nonsense: one line
        if args.stream and text:
            sys.stdout.write("\n")
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        close = getattr(stream, "close", None)
        if close is not None:  # a served stream's connection, mid-continuation
            close()
    if args.stream:
        sys.stdout.write("\n")
    else:
        print(trim_poem(text))
    if args.seed is None:
        print(f"(seed {seed})", file=sys.stderr)
    return 0


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure generation speed against the reference loops",
                       description="Measure tokens/s of this engine's sampler against the baseline loops "
                                   "(contract: Bench JSON), and Spreeder's poems/s.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="default: default markov spreeder; word-gru-2x1500 = random weights, 30k words")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds per measurement (default 1)")
    p.add_argument("--repeats", type=int, default=5,
                   help="measurements of engine and baseline, alternated; medians reported (default 5)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"),
                   help="weights of the CPU fused step (default: the card's cpu_precision, else fp32)")
    p.add_argument("--stage", type=float, default=0.0, metavar="S",
                   help="also play the poem flick headless for S seconds: fps and frame_ms_p99 beside poems/s")
    p.add_argument("--no-flick", action="store_true", help="skip the poem-flick case (4 × 222-word poems)")
    p.add_argument("--streams", default="1,16", help="stream counts for neural kinds (default 1,16)")
    p.add_argument("--quality", action="store_true", help="also measure real-word and copied-6-gram rates")
    p.add_argument("--quality-temperature", type=float, default=0.7, metavar="T",
                   help="temperature of the --quality samples (default 0.7)")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    # lazy: this pulls in torch (~1.5 s); only the paths that run a neural model pay for it
    from performance.model_bench import bench_all

    models = args.models or ["default", "markov", "spreeder"]
    result = bench_all(models, seconds=args.seconds,
                       streams=[int(s) for s in args.streams.split(",")], quality=args.quality,
                       repeats=max(1, args.repeats), precision=args.precision, flick=not args.no_flick,
                       stage=args.stage, quality_temperature=args.quality_temperature)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"device {result['device']}, {result['threads']} threads")
        for c in result["cases"]:
            if "lines_per_poem" in c:
                print(f"  {c['model']:<12} {c['kind']:<16} {c['poems_per_s']:>10.1f} poems/s "
                      f"({c['lines_per_poem']} lines, rate {c['rate']})")
            elif "engine_tok_s" in c:
                print(f"  {c['model']:<12} {c['kind']:<16} streams {c['streams']:>2}  engine {c['engine_tok_s']:>10.0f} tok/s"
                      f"  baseline {c['baseline_tok_s']:>9.0f} tok/s  ratio {c['ratio']:.1f}×"
                      + (f" [{c['ratio_spread'][0]:.1f}-{c['ratio_spread'][1]:.1f}] {c['precision']}"
                         if "ratio_spread" in c else "")
                      + (f"  overhead {(1 - c['ratio']) * 100:.1f}%  first token {c['first_token_s']:.3f} s "
                         f"(raw {c['baseline_first_token_s']:.3f} s)"
                         if "first_token_s" in c else ""))
                if "floor_fraction" in c:
                    print(f"  {'':<29} {c['weight_bytes_per_token'] / 1e6:.2f} MB/token, copy {c['copy_gb_s']:.1f} GB/s:"
                          f" {c['floor_fraction']:.0%} of the memory floor ({c['floor_tok_s']:.0f} tok/s);"
                          f" {c['compute_fraction']:.0%} of {c['gemm_gflops']:.0f} GFLOP/s")
            elif c.get("case") == "stage-flick":
                print(f"  stage, poem flick headless {c.get('seconds')} s: fps {c.get('fps')}, frame_ms_p99"
                      f" {c.get('frame_ms_p99')}, {c.get('poems')} poems {c.get('error', '')}")
            elif c.get("case") == "flick":
                print(f"  {c['model']:<12} {c['kind']:<16} flick {c['streams']} × {c['words_per_poem']} words:"
                      f" {c['poems_per_s']:.2f} poems/s [{c['poems_per_s_spread'][0]:.2f}-{c['poems_per_s_spread'][1]:.2f}]"
                      f" ({c['tok_s']:.0f} tok/s)")
            else:
                print(f"  {c}")
    return 0


def register_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a model for another engine (pretrained: a llama.cpp adapter GGUF)",
                       description="Write a model in another engine's format. pretrained: --gguf writes "
                                   "DIR/adapter.gguf (a llama.cpp LoRA adapter) and a served card DIR-served/.")
    p.add_argument("model", metavar="MODEL", help="a folder or a name under models/")
    p.add_argument("--gguf", action="store_true", help="a llama.cpp LoRA adapter GGUF beside the weights")
    p.add_argument("--url", help="the served card's base_url (default http://127.0.0.1:8080/v1)")
    p.add_argument("--prefix", help="the served card's prefix (a poet; default the card's)")
    p.add_argument("--served-out", metavar="DIR", help="where the served card goes (default MODEL-served beside MODEL)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:

    try:
        model_dir = resolve_model_dir(args.model)
        card = read_card(model_dir)
        fn = kind(card["kind"]).function("export")
        if fn is None:
            raise ModelFileError(f"{model_dir}: kind {card['kind']} has no export")
        print(fn(model_dir, card, args))
        return 0
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def register_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="do the models' slow first-use steps now (make install runs it)",
                       description="Do each model's slow first-use step ahead of a show (pretrained: dequantise "
                                   "the base once into the cache, 15-30 s), so a scene's first text comes in seconds.")
    p.add_argument("models", metavar="MODEL", nargs="*", help="folders or names under models/ (default: all of them)")
    p.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    # lazy: the models folder is listed only for this command
    from performance.textgen.cards import MODELS_DIR

    names = args.models or sorted(d.name for d in MODELS_DIR.iterdir() if (d / "model.json").exists())
    code = 0
    for name in names:
        try:
            model_dir = resolve_model_dir(name)
            card = read_card(model_dir)
            fn = kind(card["kind"]).function("prepare")
            if fn is not None:
                print(fn(model_dir, card))
        except ModelFileError as e:
            print(f"error: {e}", file=sys.stderr)
            code = 2
    return code
