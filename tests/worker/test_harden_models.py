"""Model folders that pass the loader's checks must be able to write; a model that cannot write is
replaced by the fallback, with one log line, not one per poem (issue 20, item 4)."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from conftest import ROOT, ScriptModel
from safetensors.numpy import load_file, save_file

from performance.protocol.worker import Done, Failed, Grant, Open, TokenOut
from performance.show.config import MAX_PROMPT_CHARS, load_scene
from performance.show.schema import ConfigError
from performance.textgen import load_model
from performance.textgen.base import ModelFileError
from performance.textgen.lengths import LengthRule
from performance.worker.core import MAX_FAILURES, WorkerCore


def copy_model(tmp_path, name: str):
    d = tmp_path / name
    shutil.copytree(ROOT / "models" / name, d)
    return d


def test_neural_card_that_needs_too_much_memory_or_has_a_numeric_vocab_is_refused(tmp_path):
    d = copy_model(tmp_path, "default")
    card = json.loads((d / "model.json").read_text())
    card["hyperparameters"]["hidden"] = 60000  # ~10 GB of LSTM weights: refused before allocating any
    (d / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="needs .* MB"):
        load_model(d)
    card = json.loads((ROOT / "models/default/model.json").read_text())
    card["vocab"] = list(range(len(card["vocab"])))
    (d / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="list of non-empty strings"):
        load_model(d)


def test_markov_tables_of_the_wrong_dtype_are_refused(tmp_path):
    d = copy_model(tmp_path, "markov")
    arrays = load_file(str(d / "model.safetensors"))
    arrays = {k: v.astype(np.float32) if k.startswith("next") else v for k, v in arrays.items()}
    save_file(arrays, str(d / "model.safetensors"))
    with pytest.raises(ModelFileError, match="integers"):
        load_model(d)


class BrokenModel(ScriptModel):
    def start(self, seed: int, prompt: str = ""):
        stream = super().start(seed, prompt)

        def boom(*a, **k):
            raise IndexError("vocabulary index out of range")

        stream.next = boom
        return stream


def test_a_model_that_cannot_write_falls_back_and_is_given_up_after_n_failures(caplog):
    out: list = []
    core = WorkerCore(out.append, loader=lambda n: BrokenModel(n) if n == "bad" else ScriptModel(n))
    with caplog.at_level(logging.ERROR, logger="lectern.generator"):
        for poem in range(1, 11):
            core.handle(Open(poem, "bad", poem, "", LengthRule("words", 5)))
            core.handle(Grant(poem, (0.8,) * 20))
            core.pump()
    failed = [m for m in out if isinstance(m, Failed)]
    assert len(failed) == 10 and all(f.fallback == "default" for f in failed)
    assert len([m for m in out if isinstance(m, Done)]) == 10  # every poem was written, by the fallback
    assert any(isinstance(m, TokenOut) for m in out)
    lines = [r for r in caplog.records if "bad" in r.getMessage()]
    assert len(lines) == 2 and f"{MAX_FAILURES} poems in a row" in lines[1].getMessage()


def test_prompts_are_capped(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(f'model = "markov"\nlength = {{ words = 5 }}\nprompt = "{"x" * (MAX_PROMPT_CHARS + 1)}"\n')
    with pytest.raises(ConfigError, match="prompt"):
        load_scene(p)


class SlowStartModel(ScriptModel):
    """A model stuck reading its prompt (the 50 KB prompt stall) for a while, in Python-level steps."""

    def start(self, seed: int, prompt: str = ""):
        import time

        for _ in range(150):
            time.sleep(0.01)
        return super().start(seed, prompt)


def test_a_stalled_worker_is_abandoned_and_replaced_then_ends_by_itself():
    """No thread is killed from outside: the replacement serves at once on fresh queues, the
    stalled thread's late tokens reach nobody, and it ends at its next turn once its call returns."""
    import time

    from performance.protocol.worker import TokenOut
    from performance.worker.thread import GeneratorThread

    w = GeneratorThread(loader=lambda n: SlowStartModel(n) if n == "slow" else ScriptModel(n))
    w.start()
    w.send(Open(1, "slow", 1, "", LengthRule("words", 5)))
    time.sleep(0.3)  # now inside start()
    stuck, old_outbox = w._thread, w.outbox
    w.restart()
    assert w.alive() and w.stalled_threads() == 1 and w.outbox is not old_outbox
    w.send(Open(2, "fast", 2, "", LengthRule("words", 5)))
    w.send(Grant(2, (0.8,) * 4))
    t0 = time.monotonic()
    got = []
    while sum(isinstance(m, TokenOut) for m in got) < 4 and time.monotonic() - t0 < 5:
        try:
            got.append(w.outbox.get(timeout=0.1))
        except Exception:
            pass
    assert [m.id for m in got if isinstance(m, TokenOut)] == [2, 2, 2, 2]  # the new worker, before the old returns
    while stuck.is_alive() and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert not stuck.is_alive() and w.stalled_threads() == 0 and w.alive()
    assert all(getattr(m, "id", 1) == 1 for m in list(old_outbox.queue))  # its late answers reached nobody
    w.stop()
