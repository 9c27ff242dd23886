"""`check` that scales and speaks plainly, and refuses weights that are not what the card says
(issue 27, items 6 and 7)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from safetensors.torch import load_file, save_file

from performance.check import run_check
from performance.show.config import load_scene, load_setlist
from performance.show.schema import ConfigError
from performance.textgen import load_model
from performance.textgen.base import ModelFileError


def check(capsys, *paths) -> tuple[int, list[str]]:
    rc = run_check(argparse.Namespace(paths=list(paths), probe=False))
    return rc, capsys.readouterr().out.splitlines()


# ---- item 7: linear, plain --------------------------------------------------------------------

def test_check_of_ten_thousand_inline_scenes_takes_seconds(tmp_path):
    p = tmp_path / "big.toml"
    p.write_text('name = "big"\n' + "".join(f'[[scene]]\nname = "s{i}"\nmodel = "markov"\n\n' for i in range(10_000)))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "run.py", "check", str(p)], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 0 and "10000 scenes" in r.stdout, r.stdout + r.stderr
    assert took < 30, took  # 1.5-2 minutes before (the markov card was read again for every scene)


def test_a_byte_order_mark_is_accepted(tmp_path, capsys):
    scene = tmp_path / "bom-scene.toml"
    scene.write_bytes("\ufeffmodel = \"markov\"\nlength = { words = 12 }\n".encode())
    assert load_scene(scene).models == ("markov",)
    sl = tmp_path / "bom-set.toml"
    sl.write_bytes(f'\ufeffname = "b"\n[[scene]]\nfile = "{scene}"\n'.encode())
    assert len(load_setlist(sl).entries) == 1
    rc, out = check(capsys, scene, sl)
    assert rc == 0 and len(out) == 2 and all(ln.startswith("ok") for ln in out), out


@pytest.mark.parametrize("body", [
    'name = "forgot"\nloop = true\nstart = 1\n',
    'name = "typo"\nloop = true\n[[scenes]]\nfile = "scenes/markov-stream.toml"\n',
    'name = "flat"\nmin_go_interval = 1.0\nfile = "scenes/markov-stream.toml"\n',
])
def test_a_setlist_without_scene_tables_says_so(tmp_path, capsys, body):
    p = tmp_path / "set.toml"
    p.write_text(body)
    rc, out = check(capsys, p)
    assert rc == 1 and len(out) == 1, out
    assert "[[scene]]" in out[0] and str(p) in out[0] and "unknown key" not in out[0], out
    with pytest.raises(ConfigError, match=r"\[\[scene\]\]"):
        load_scene(p)  # play SCENE gives the same hint


@pytest.mark.parametrize("do, says", [
    ("model ../../etc", "model"), ("model /etc", "model"), ("model nosuchmodel", "nosuchmodel"),
    ("scene 7", "no such scene"), ("scene nowhere", "no such scene"),
])
def test_at_arguments_are_checked_by_check(tmp_path, capsys, do, says):
    p = tmp_path / "set.toml"
    p.write_text(f'name = "at"\n[[scene]]\nname = "one"\nmodel = "markov"\n\n[[at]]\ntime = "12:00"\ndo = "{do}"\n')
    rc, out = check(capsys, p)
    assert rc == 1 and len(out) == 1 and "at[1]" in out[0] and says in out[0], out


def test_at_model_arguments_that_exist_pass(tmp_path, capsys):
    p = tmp_path / "set.toml"
    p.write_text('name = "at"\n[[scene]]\nname = "one"\nmodel = "markov"\n\n'
                 '[[at]]\ntime = "12:00"\ndo = "model default"\n[[at]]\ntime = "13:00"\ndo = "model markov"\n')
    rc, out = check(capsys, p)
    assert rc == 0, out


def test_at_model_whose_card_is_broken_is_refused_by_check(tmp_path, capsys, monkeypatch):
    from performance.textgen import cards

    models = tmp_path / "models"
    (models / "broken").mkdir(parents=True)
    (models / "broken" / "model.json").write_text('{"kind": "nonsense"}')
    shutil.copytree(ROOT / "models" / "markov", models / "markov")
    monkeypatch.setattr(cards, "MODELS_DIR", models)
    p = tmp_path / "set.toml"
    p.write_text('name = "at"\n[[scene]]\nname = "one"\nmodel = "markov"\n\n[[at]]\ntime = "12:00"\ndo = "model broken"\n')
    rc, out = check(capsys, p)
    assert rc == 1 and len(out) == 1 and "at[1]" in out[0] and "kind" in out[0], out


# ---- item 6: weights that are what the card says ----------------------------------------------

def small_model(tmp_path, name="m"):
    d = tmp_path / name
    d.mkdir()
    for f in ("model.json", "model.safetensors"):
        shutil.copy(ROOT / "models" / "vintage" / f, d / f)
    return d


@pytest.mark.parametrize("dtype", ["bool", "int64", "int8", "uint8"])
def test_weights_that_are_not_floating_point_are_refused(tmp_path, capsys, dtype):
    import torch

    d = small_model(tmp_path)
    tensors = load_file(str(d / "model.safetensors"))
    tensors = {k: (v > 0) if dtype == "bool" else (v * 100).to(getattr(torch, dtype)) for k, v in tensors.items()}
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(ModelFileError) as e:
        load_model(d)
    msg = str(e.value)
    assert "model.safetensors" in msg and dtype in msg and "float" in msg and "\n" not in msg, msg
    assert next(iter(tensors)) in msg or any(k in msg for k in tensors), msg
    rc, out = check(capsys, d)
    assert rc == 1 and len(out) == 1 and out[0].startswith("error") and dtype in out[0], out


def test_one_tensor_of_the_wrong_dtype_is_named(tmp_path):
    import torch

    d = small_model(tmp_path)
    tensors = load_file(str(d / "model.safetensors"))
    name = sorted(tensors)[-1]
    tensors[name] = tensors[name].to(torch.int32)
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(ModelFileError, match=f"tensor {name} is int32"):
        load_model(d)


def test_half_precision_weights_still_load(tmp_path):
    import torch

    d = small_model(tmp_path)
    tensors = {k: v.to(torch.float16) for k, v in load_file(str(d / "model.safetensors")).items()}
    save_file(tensors, str(d / "model.safetensors"))
    gen = load_model(d)
    assert isinstance(gen.start(1, "").next(0.8).text, str)


@pytest.mark.parametrize("kind", ["word-lstm", "word-gru"])
def test_char_weights_under_a_word_card_are_refused(tmp_path, capsys, kind):
    d = small_model(tmp_path)
    card = json.loads((d / "model.json").read_text())
    card["kind"] = kind
    card["hyperparameters"]["kind"] = kind
    if kind == "word-gru":  # GRU weights would not fit LSTM shapes anyway: keep the char LSTM's
        card["kind"] = card["hyperparameters"]["kind"] = "word-lstm"
    (d / "model.json").write_text(json.dumps(card))
    rc, out = check(capsys, d)
    assert rc == 1 and len(out) == 1, out
    assert "model.json" in out[0] and "word-lstm" in out[0] and "char" in out[0], out


def test_word_vocabulary_under_a_char_card_is_refused(tmp_path):
    d = tmp_path / "w"
    shutil.copytree(ROOT / "models" / "words", d)
    card = json.loads((d / "model.json").read_text())
    card["kind"] = card["hyperparameters"]["kind"] = "char-gru"
    (d / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="char-gru"):
        load_model(d)


def test_shipped_models_still_pass_check(capsys):
    rc, out = check(capsys, ROOT / "models" / "default", ROOT / "models" / "words", ROOT / "models" / "vintage")
    assert rc == 0, out
