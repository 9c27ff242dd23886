"""The x-ray on stage: its pixels show the confidence scale and the unit's tint (headless and under
a real X server), transcripts carry top-k and units so a re-render sees the same, and a live
training scene writes with ever newer checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pygame
import pytest
from conftest import ROOT

from performance.show.look import Look, colour
from performance.stage.draw import StageRenderer
from performance.stage.layouts import Placed
from performance.stage.view import StageState

W, H = 640, 360
LOOK = Look(size=40, margin=0.08)


def _state(neuron: int | None = None) -> StageState:
    st = StageState()
    st.apply({"t": 0.0, "event": "scene", "layout": "xray", "look": LOOK.to_dict(), "columns": [{"model": "m"}],
              "xray": {"k": 3, "neuron": neuron, "trace": True}})
    st.apply({"t": 0.0, "event": "poem_start", "n": 1, "model": "m", "seed": 1, "column": 0})
    return st


def _token(st: StageState, text: str, p: float, unit: float | None = None) -> None:
    ev = {"t": 0.5, "event": "token", "poem": 1, "text": text, "temperature": 0.8, "p": p, "column": 0,
          "top": [[text, p], ["x", (1 - p) / 2]]}
    if unit is not None:
        ev["unit"] = unit
    st.apply(ev)


def _dominant(surf: pygame.Surface, item: Placed, exclude: tuple[int, int, int]) -> np.ndarray:
    """The mean colour of the pixels of a run that differ most from its background."""
    arr = pygame.surfarray.array3d(surf).astype(int)
    w = StageRenderer((W, H)).fonts.width(item.font, item.size, item.text)
    region = arr[item.x:item.x + w, item.y:item.y + item.size].reshape(-1, 3)
    dist = np.abs(region - np.array(exclude)).sum(axis=1)
    return region[dist >= np.percentile(dist, 97)].mean(axis=0)


def _near(rgb, target: str, tol: int = 40) -> bool:
    return bool(np.abs(np.array(rgb) - np.array(colour(target))).max() <= tol)


def test_a_confident_token_is_cool_and_an_unlikely_one_hot_headless() -> None:
    st = _state()
    _token(st, "SURE ", 0.99)
    _token(st, "ODD", 0.01)
    view = st.frame(1.0)
    surf = pygame.Surface((W, H))
    r = StageRenderer((W, H))
    r.draw(surf, view)
    runs: dict[str, Placed] = {}
    for p in r.place(view):  # the poem's runs come first, the panel's labels after them
        if isinstance(p, Placed):
            runs.setdefault(p.text.strip(), p)
    bg = colour(LOOK.background)
    assert _near(_dominant(surf, runs["SURE"], bg), LOOK.confidence_high)
    assert _near(_dominant(surf, runs["ODD"], bg), LOOK.confidence_low)
    assert runs["SURE"].y == runs["ODD"].y and runs["SURE"].x < runs["ODD"].x
    panel = [p for p in r.place(view) if isinstance(p, Placed) and p.y > runs["ODD"].y and p.text in ("ODD", "x")
             and p.x >= runs["ODD"].x]
    assert [p.text for p in panel] == ["ODD", "x"], "the top guesses stand under the newest token"


def test_the_watched_unit_tints_the_background_behind_its_characters() -> None:
    st = _state(neuron=4)
    _token(st, "ON", 0.99, unit=0.95)
    _token(st, "OFF", 0.99, unit=0.0)
    _token(st, "NEG", 0.99, unit=-0.95)
    view = st.frame(1.0)
    runs: dict[str, Placed] = {}
    for p in StageRenderer((W, H)).place(view):
        if isinstance(p, Placed):
            runs.setdefault(p.text.strip(), p)
    bg = colour(LOOK.background)
    assert runs["OFF"].bg is None
    pos, neg = runs["ON"].bg, runs["NEG"].bg
    assert pos is not None and neg is not None
    assert pos[1] > bg[1] + 40 and pos[1] > pos[0], "positive firing: the look's green tint"
    assert neg[0] > bg[0] + 40 and neg[0] > neg[1], "negative firing: the look's red tint"
    assert any(p.text == "unit 4" for p in StageRenderer((W, H)).place(view) if isinstance(p, Placed))


def _play(tmp_path: Path, setlist: Path, env: dict, *extra: str, duration: float = 20) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "run.py", "play", str(setlist), "--window", f"{W}x{H}", "--duration", str(duration),
           "--quiet", "--osc-port", "0", "--transcript-dir", str(tmp_path / "sessions"),
           "--screenshot", str(tmp_path / "s.png"), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)


def _events(tmp_path: Path) -> list[dict]:
    (jsonl,) = (tmp_path / "sessions").glob("generated-*.jsonl")
    return [json.loads(line) for line in jsonl.read_text().splitlines()]


XRAY_STREAM = ('name = "x"\n[[scene]]\nlayout = "stream"\nmodel = "markov"\nlength = { lines = 40 }\n'
               'temperature = { program = "constant", value = 1.0 }\npacing = { reveal = "words", rate = 12 }\n'
               'xray = { k = 5, trace = false }\nlook = { size = 30 }\n')


def _check_session(tmp_path: Path, r: subprocess.CompletedProcess) -> None:
    """The screenshot shows both ends of the scale; the transcript alone rebuilds the x-ray."""
    assert r.returncode == 0, r.stderr[-2000:]
    events = _events(tmp_path)
    tokens = [e for e in events if e["event"] == "token"]
    assert tokens, r.stderr[-1500:]
    assert all("top" in e for e in tokens if e["p"] < 1.0)
    assert all("unit" not in e for e in tokens), "a chain has no hidden unit"
    img = pygame.surfarray.array3d(pygame.image.load(str(tmp_path / "s.png"))).reshape(-1, 3).astype(int)
    look = Look()
    hot = (np.abs(img - np.array(colour(look.confidence_low))).max(axis=1) <= 24).sum()
    cool = (np.abs(img - np.array(colour(look.confidence_high))).max(axis=1) <= 24).sum()
    assert hot > 20 and cool > 20, (hot, cool)
    st = StageState()
    for e in events:
        st.apply(e)
    xv = st.frame(events[-1]["t"]).xray
    shown = [(t["text"], t["p"]) for t in tokens][-len(xv.tokens):]
    assert [(text, p) for _, text, p, _ in xv.tokens] == shown
    last_top = next(e["top"] for e in reversed(tokens) if "top" in e)
    assert [list(x) for x in xv.top] == last_top


def test_xray_headless_shows_the_scale_and_its_transcript_redraws_it(tmp_path: Path) -> None:
    setlist = tmp_path / "x.toml"
    setlist.write_text(XRAY_STREAM)
    _check_session(tmp_path, _play(tmp_path, setlist, dict(os.environ), "--headless", duration=10))


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (make setup installs it)")
def test_xray_under_a_real_x_server_shows_the_scale(tmp_path: Path) -> None:
    setlist = tmp_path / "x.toml"
    setlist.write_text(XRAY_STREAM)
    n = next(n for n in range(140, 400) if not Path(f"/tmp/.X11-unix/X{n}").exists()
             and not Path(f"/tmp/.X{n}-lock").exists())
    xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", f"{W}x{H}x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        env = {k: v for k, v in os.environ.items() if k != "SDL_VIDEODRIVER"}
        env["DISPLAY"] = f":{n}"
        r = _play(tmp_path, setlist, env, duration=8)
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    _check_session(tmp_path, r)


def test_a_live_training_scene_writes_with_ever_newer_checkpoints(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the sea is calm tonight, the tide is full, the moon lies fair\n" * 200)
    setlist = tmp_path / "learn.toml"
    setlist.write_text(f'name = "learn"\n[[scene]]\nlayout = "xray"\nmodel = {{ train = "{tmp_path}/run" }}\n'
                       'length = { chars = 40 }\npacing = { reveal = "chars", rate = 200, hold = 0.2 }\n'
                       'xray = { neuron = "auto", curve = true }\n'
                       f'[scene.train]\ncorpus = "{corpus}"\nhidden = 16\nembed = 8\nlayers = 1\nsteps = 400\n'
                       'keep_every = 10\nbatch = 8\nseq_len = 32\n')
    env = dict(os.environ)
    r = _play(tmp_path, setlist, env, "--headless", "--stats-json", str(tmp_path / "s.json"), duration=45)
    assert r.returncode == 0, r.stderr[-2000:]
    events = _events(tmp_path)
    labels = [e.get("checkpoint") for e in events if e["event"] in ("poem_start", "poem_info") and e.get("checkpoint")]
    steps = [int(lab.split("step ")[1].split(" ")[0]) for lab in labels]
    assert len(set(steps)) >= 2 and steps == sorted(steps), steps
    assert any(e["event"] == "token" and "unit" in e for e in events)
    assert (tmp_path / "run" / "train.log").exists()
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames"] > 100
