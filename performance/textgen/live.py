"""Live training on stage: a `run.py train` process at low priority, and following its checkpoints.

The trainer is a child process started from a scene's [train] table: niced, its torch threads
capped (one by default), so the frame loop keeps its core. It keeps a checkpoint every N steps
(`--keep-every`); the generator worker follows the newest between poems (`Follower`). A checkpoint
that cannot be read (corrupt, half-written by something else) is skipped with one log line and the
previous one keeps writing.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from performance.textgen.base import ModelFileError
from performance.textgen.vintages import checkpoint_label, kept_steps, step_dir

log = logging.getLogger("lectern.live")
ROOT = Path(__file__).resolve().parents[2]
FIRST_CHECKPOINT_WAIT_S = 120.0  # a trainer just started needs a few seconds for its first (step 0)


@dataclass(frozen=True, slots=True)
class TrainSpec:
    """A scene's [train] table: what the on-stage trainer runs."""

    out: str
    corpus: str
    kind: str = "char-lstm"
    layers: int = 2
    hidden: int = 128
    embed: int = 32
    steps: int = 3000
    keep_every: int = 25
    batch: int = 32
    seq_len: int = 128
    lr: float = 3e-3
    threads: int = 1
    nice: int = 10
    fresh: bool = True  # start from scratch (remove old kept steps), so the audience sees it learn

    def argv(self) -> list[str]:
        """The `run.py train` command line."""
        return [sys.executable, str(ROOT / "run.py"), "train", self.corpus, "--kind", self.kind, "--out", self.out,
                "--layers", str(self.layers), "--hidden", str(self.hidden), "--embed", str(self.embed),
                "--steps", str(self.steps), "--keep-every", str(self.keep_every), "--eval-every",
                str(self.keep_every), "--batch", str(self.batch), "--seq-len", str(self.seq_len), "--lr", str(self.lr),
                "--patience", "1000000", "--dropout", "0", "--device", "cpu"]


class Trainer:
    """One training child process (owned by the generator worker that started it)."""

    def __init__(self, spec: TrainSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the trainer niced, with capped threads; its output goes to OUT/train.log."""
        out = Path(self.spec.out)
        out.mkdir(parents=True, exist_ok=True)
        if self.spec.fresh:
            for s in kept_steps(out):
                shutil.rmtree(step_dir(out, s), ignore_errors=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(self.spec.threads), MKL_NUM_THREADS=str(self.spec.threads),
                   PYTHONUNBUFFERED="1")
        nice = self.spec.nice
        logf = open(out / "train.log", "ab")  # noqa: SIM115 (the child holds it)
        self.proc = subprocess.Popen(self.spec.argv(), env=env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                     cwd=str(ROOT), preexec_fn=lambda: os.nice(nice))  # noqa: PLW1509
        logf.close()
        _RUNNING.append(self)
        log.info("training on stage: pid %d → %s", self.proc.pid, out)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the child (it keeps what it kept)."""
        if self.running():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_RUNNING: list[Trainer] = []


@atexit.register
def _stop_all() -> None:
    for t in _RUNNING:
        t.stop()


class Follower:
    """Follows DIR's newest kept step: `current(loader)` reloads when a newer one is readable."""

    def __init__(self, name: str, base_dir: Path) -> None:
        self.name = name
        self.base = Path(base_dir)
        self.step: int | None = None
        self.gen = None
        self.skipped: set[int] = set()

    def current(self, loader, wait_s: float = FIRST_CHECKPOINT_WAIT_S, on_wait=None):
        """The generator of the newest readable checkpoint (waits for the first one, calling
        on_wait about once a second meanwhile). Raises ModelFileError when there is none at all."""
        deadline = time.monotonic() + wait_s
        beat = time.monotonic()
        while True:
            for s in reversed(kept_steps(self.base)):
                if self.step is not None and s <= self.step:
                    break
                if s in self.skipped:
                    continue
                try:
                    gen = loader(step_dir(self.base, s))
                except ModelFileError as e:
                    self.skipped.add(s)
                    log.warning("follow %s: skipped step %d, still playing %s: %s", self.name, s,
                                self.step if self.step is not None else "nothing", e)
                    continue
                self.gen, self.step = gen, s
                break
            if self.gen is not None or time.monotonic() >= deadline:
                break
            if on_wait is not None and time.monotonic() - beat >= 1.0:
                beat = time.monotonic()
                on_wait()
            time.sleep(0.2)
        if self.gen is None:
            raise ModelFileError(f"model '{self.name}': no readable checkpoint in {self.base} "
                                 f"(train with --keep-every N, or give the scene a [train] table)")
        return self.gen

    def label(self) -> str:
        """The caption for the checkpoint now playing."""
        card = getattr(self.gen, "card", {}) or {}
        return checkpoint_label(self.base.name, card)

    def curve(self) -> tuple[tuple[float, float], ...]:
        """(step, validation loss) so far, from the checkpoint's card."""
        card = getattr(self.gen, "card", {}) or {}
        return tuple((float(a), float(b)) for a, b in card.get("val_curve", []))
