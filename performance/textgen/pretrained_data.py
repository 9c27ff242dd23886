"""The pretrained kind's data: the two validation splits, the poets' prefixes, nats per character.

Standard split: the last 10% of the corpus characters validates, as for every kind (train.py),
so the numbers stand beside the char models'. Same-poets split: the first 90% cut in blocks of
BLOCK characters, every EVERY-th one (blocks EVERY-1, 2*EVERY-1, ...) kept out of training, so
that "writes like my corpus" is measured on the same poets the model trained on (the shipped
corpus's last 10% is mostly Hopkins and Yeats, whom little of the first 90% resembles).

Nats per character: every window starts from the end-of-text token (id 0), all of its tokens
are scored, and the summed token loss is divided by the characters those tokens cover, so a
tokenizer that packs more characters into a token gains nothing unearned.

Prefix conditioning: with prefixes on, a share of the training windows start with the poet's
mark, PREFIX_FORMAT (not scored); on stage the scene's prefix is put before the prompt the same
way. The mark's bracket characters are banned from the output (pretrained.py), so a corpus mark
never reaches the stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

BLOCK = 2048
EVERY = 10
VAL_TOKENS = 512  # the standard split's window, in tokens
START_ID = 0  # <|endoftext|>: the start of every window, training and stage alike
PREFIX_FORMAT = "[{}]\n"


def prefix_text(prefix: str) -> str:
    """The mark put before a window or a prompt ("" for no prefix)."""
    prefix = prefix.strip().replace("[", "").replace("]", "")
    return PREFIX_FORMAT.format(prefix) if prefix else ""


def poet_name(filename: str) -> str:
    """en.hopkins.txt -> Hopkins; en.milton.paradise_lost.txt -> Milton; sonnets.txt -> Sonnets."""
    parts = Path(filename).stem.split(".")
    if len(parts) > 1 and len(parts[0]) == 2:  # a language code first
        parts = parts[1:]
    return parts[0].replace("_", " ").title()


def poet_spans(corpus_text: str, corpus_path: Path, files: tuple[str, ...]) -> list[tuple[int, str]]:
    """(start character, poet) of each file in the joined corpus text (read_corpus's layout)."""
    folder = corpus_path if corpus_path.is_dir() else corpus_path.parent
    spans, pos = [], 0
    for name in files:
        part = (folder / name).read_text(encoding="utf-8").replace("\r\n", "\n").strip("\n")
        spans.append((pos, poet_name(name)))
        pos += len(part) + 2
    return spans or [(0, "")]


def poet_at(spans: list[tuple[int, str]], char: int) -> str:
    name = spans[0][1]
    for start, poet in spans:
        if start > char:
            break
        name = poet
    return name


@dataclass
class Splits:
    """The corpus cut three ways; token ids with their character offsets."""

    split_char: int
    train_ids: torch.Tensor  # the first 90%, tokenised whole
    train_chars: torch.Tensor  # each train token's first character
    held: torch.Tensor  # bool per train token: in a same-poets block (never trained on)
    val_windows: list[tuple[list[int], int]]  # standard split: (ids, characters)
    same_windows: list[tuple[list[int], int]]  # same-poets split: one window per held block (cut at VAL_TOKENS)

    def card(self) -> dict:
        return {"standard": {"validates": f"characters {self.split_char}.. (the last 10%)",
                             "window_tokens": VAL_TOKENS, "windows": len(self.val_windows),
                             "characters": sum(c for _, c in self.val_windows)},
                "same_poets": {"block_chars": BLOCK, "every": EVERY, "held_blocks": f"i % {EVERY} == {EVERY - 1}",
                               "of": f"characters 0..{self.split_char}", "windows": len(self.same_windows),
                               "characters": sum(c for _, c in self.same_windows)}}


def _windows(tokenizer, text: str, start_char: int = 0) -> list[tuple[list[int], int]]:
    """Consecutive VAL_TOKENS windows of text, each with the characters it covers."""
    enc = tokenizer.encode(text)
    ids, offs = enc.ids, [o[0] for o in enc.offsets]
    out = []
    for i in range(0, len(ids), VAL_TOKENS):
        end_char = offs[i + VAL_TOKENS] if i + VAL_TOKENS < len(ids) else len(text)
        out.append((ids[i:i + VAL_TOKENS], end_char - (offs[i] if i else 0)))
    return out


def make_splits(tokenizer, text: str) -> Splits:
    """Tokenise the corpus once into the training tokens and both validation splits."""
    split = int(len(text) * 0.9)
    train_text, val_text = text[:split], text[split:]
    enc = tokenizer.encode(train_text)
    chars = torch.tensor([o[0] for o in enc.offsets], dtype=torch.long)
    held = (chars // BLOCK) % EVERY == EVERY - 1
    same = []
    for b in range(EVERY - 1, len(train_text) // BLOCK + 1, EVERY):
        block = train_text[b * BLOCK:(b + 1) * BLOCK]
        if block.strip():
            same.extend(_windows(tokenizer, block))
    return Splits(split, torch.tensor(enc.ids, dtype=torch.long), chars, held, _windows(tokenizer, val_text), same)


@torch.no_grad()
def nats_per_char(net, windows: list[tuple[list[int], int]], device: str = "cpu", prefix_ids: list[int] = (),
                  batch: int = 4) -> float:
    """Summed token loss over the windows / their characters; each window read from START_ID
    (+ prefix_ids, not scored)."""
    was = net.training
    net.eval()
    total, chars = 0.0, 0
    head = [START_ID, *prefix_ids]
    for i in range(0, len(windows), batch):
        group = windows[i:i + batch]
        width = max(len(ids) for ids, _ in group)
        x = torch.full((len(group), len(head) + width - 1), START_ID, dtype=torch.long)
        y = torch.full((len(group), width), -100, dtype=torch.long)
        for j, (ids, c) in enumerate(group):
            seq = head + ids
            x[j, :len(seq) - 1] = torch.tensor(seq[:-1])
            y[j, :len(ids)] = torch.tensor(ids)
            chars += c
        logits, _ = net(x.to(device))
        logits = logits[:, len(head) - 1:].float()
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1),
                                 ignore_index=-100, reduction="sum").item()
    net.train(was)
    return total / chars if chars else float("nan")  # no windows (a corpus too small for the split)


@dataclass
class PoetSampler:
    """Where training windows start: a poet drawn with weight (their training tokens) ** balance, then
    a start inside them. balance 1 reads the corpus as it is (the shipped one is 79% Milton, so a
    fine-tune forgets how Hopkins, the standard split's poet, writes); 0.5 gives Milton 59%,
    Shakespeare 27%, Hopkins 15%. No poet is drawn more than MAX_BOOST times their own share, so a
    short file is not read so often that it is learnt by heart."""

    ranges: list[tuple[int, int]]  # training-token [start, end) per poet
    weights: torch.Tensor
    poets: list[str]
    MAX_BOOST = 4.0

    @classmethod
    def build(cls, splits: Splits, spans: list[tuple[int, str]], balance: float = 1.0) -> PoetSampler:
        n = len(splits.train_ids)
        starts = [int(torch.searchsorted(splits.train_chars, c)) for c, _ in spans] + [n]
        kept = [(a, min(b, n), poet) for a, b, (_, poet) in zip(starts[:-1], starts[1:], spans, strict=True) if min(b, n) > a]
        ranges = [(a, b) for a, b, _ in kept]
        sizes = torch.tensor([float(b - a) for a, b in ranges])
        share = sizes / sizes.sum()
        w = sizes ** balance
        w = torch.minimum(w / w.sum(), share * cls.MAX_BOOST)
        return cls(ranges, w / w.sum(), [poet for _, _, poet in kept])

    def start(self, gen: torch.Generator, seq_len: int, n: int) -> int:
        a, b = self.ranges[int(torch.multinomial(self.weights, 1, generator=gen))]
        hi = min(b, n - seq_len - 1)  # a window may run on into the next poet's first lines
        return int(torch.randint(min(a, max(0, hi - 1)), max(1, hi), (1,), generator=gen))

    def shares(self) -> dict[str, float]:
        """Each poet's share of the training windows (the card's record)."""
        return {poet or "?": round(float(w), 3) for poet, w in zip(self.poets, self.weights, strict=True)}


def training_batch(splits: Splits, gen: torch.Generator, batch: int, seq_len: int, prefixes: dict[str, list[int]],
                   spans: list[tuple[int, str]], share: float,
                   sampler: PoetSampler | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` windows of seq_len tokens from the training tokens, none touching a held block;
    a `share` of them start with their poet's prefix (its tokens not scored). Without a sampler,
    starts are uniform over the corpus."""
    n = len(splits.train_ids)
    longest = max((len(v) for v in prefixes.values()), default=0)
    x = torch.full((batch, 1 + longest + seq_len), START_ID, dtype=torch.long)
    y = torch.full_like(x, -100)
    for j in range(batch):
        for _ in range(100):  # windows crossing a held block are drawn again (rarely needed twice)
            if sampler is not None:
                s = sampler.start(gen, seq_len, n)
            else:
                s = int(torch.randint(0, max(1, n - seq_len - 1), (1,), generator=gen))
            if not splits.held[s:s + seq_len + 1].any():
                break
        ids = splits.train_ids[s:s + seq_len + 1]
        pre = prefixes.get(poet_at(spans, int(splits.train_chars[s])), []) if prefixes else []
        if pre and float(torch.rand((1,), generator=gen)) >= share:
            pre = []
        seq = torch.cat((torch.tensor([START_ID, *pre], dtype=torch.long), ids))
        x[j, :len(seq) - 1] = seq[:-1]
        y[j, len(pre):len(seq) - 1] = ids  # the target after START_ID + prefix is the window's first token
    return x, y
