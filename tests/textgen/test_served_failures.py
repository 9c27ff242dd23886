"""Served models that fail without an error: a stream that only keeps itself alive, a server that
answers nonsense or is gone for a command-line tool, and a server that serves its one model under
another name. Small real HTTP servers on loopback (tests/served_server.py's FakeServer); the real
llama.cpp server's side of it is in test_served.py."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from served_server import ALIAS, FakeServer, free_port, write_card

from performance.textgen import load_model
from performance.textgen.base import ModelFileError, ServedError
from performance.textgen.lengths import LengthRule
from performance.worker.core import Failed, Grant, Open, ServedState, TokenOut, WorkerCore

PATIENCE = 2.0


@pytest.fixture
def fake():
    servers: list[FakeServer] = []

    def make(**kw) -> FakeServer:
        servers.append(FakeServer(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _card(tmp_path: Path, base_url: str, name: str = "served", **over) -> Path:
    # timeout 1.5 s as shipped: a keep-alive comment every 0.5 s resets it forever
    return write_card(tmp_path / name, base_url, **{"timeout": 1.5, "first_token_timeout": 20.0, "retry_s": 0.3,
                                                    **over})


def _patient(tmp_path: Path, base_url: str, name: str = "served", **over) -> Path:
    return _card(tmp_path, base_url, name, patience_s=PATIENCE, **over)


def _worker():
    out: list = []
    return WorkerCore(out.append, load_model), out


def _open(core: WorkerCore, rid: int, model: Path, n: int) -> None:
    core.handle(Open(rid, str(model), rid, "", LengthRule("words", 400), fallback="markov", continuation=4))
    core.handle(Grant(rid, (0.8,) * n))


def _tokens(out: list, rid: int) -> list:
    return [m.token for m in out if isinstance(m, TokenOut) and m.id == rid]


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


# ---- no token within the patience: the fallback writes -----------------------------------------------
def test_a_stream_of_keepalive_comments_hands_the_poem_to_the_fallback_within_its_patience(fake, tmp_path, caplog):
    srv = fake(mode="keepalive", beat=0.5)
    card = _patient(tmp_path, srv.base_url)
    core, out = _worker()
    t0 = time.monotonic()
    _open(core, 1, card, 12)
    core.pump()
    took = time.monotonic() - t0
    assert len(_tokens(out, 1)) == 12, "the fallback wrote the poem"
    assert PATIENCE <= took < PATIENCE + 1.5, f"fell back after {took:.2f} s (patience {PATIENCE:g} s)"
    failed = [m for m in out if isinstance(m, Failed)]
    assert len(failed) == 1 and failed[0].fallback == "markov"
    assert "no token within 2 s (patience_s)" in failed[0].error and "keep-alive comments" in failed[0].error
    assert any(isinstance(m, ServedState) and not m.up for m in out), "the engine (and transcript) hears it is down"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and srv.base_url in errors[0] and "markov" in errors[0]
    gen = core.model(str(card))
    # retried in the background: answering /models is not enough, the stream must write
    time.sleep(PATIENCE + 0.5)
    assert not gen.up, "a server whose streams still stall is not up again"
    t1 = time.monotonic()
    _open(core, 2, card, 5)
    core.pump()
    assert time.monotonic() - t1 < 1.0, "the next poem does not wait on the stalled server"
    assert len(_tokens(out, 2)) == 5
    srv.mode = "tokens"
    assert _wait(lambda: gen.up, PATIENCE + 3), "the watcher sees the server write again"
    _open(core, 3, card, 8)
    core.pump()
    assert [t.text for t in _tokens(out, 3)[:4]] == [" w0", " w1", " w2", " w3"], "served again"
    assert any(isinstance(m, ServedState) and m.up and "again" in m.detail for m in out)


def test_patience_bounds_a_stream_that_started_and_then_only_keeps_alive(fake, tmp_path):
    srv = fake(n_tokens=4)
    gen = load_model(_patient(tmp_path, srv.base_url))
    s = gen.start(1)
    assert [s.next(0.8).text for _ in range(4)] == [" w0", " w1", " w2", " w3"]
    srv.mode = "keepalive"
    t0 = time.monotonic()
    with pytest.raises(ServedError, match=r"no token within 2 s \(patience_s\)"):
        s.next(0.8)
    assert PATIENCE <= time.monotonic() - t0 < PATIENCE + 1.0


def test_patience_is_a_card_key_with_a_default(tmp_path):
    folder = write_card(tmp_path / "d", "http://127.0.0.1:9/v1")
    card = json.loads((folder / "model.json").read_text())
    assert card.pop("patience_s") == 5, "the shipped card says it"
    (folder / "model.json").write_text(json.dumps(card))
    assert load_model(folder).patience == 5.0, "and so does the default"
    with pytest.raises(ModelFileError, match=r"key 'patience_s' = 0: a number from 0.5 to 600"):
        load_model(_card(tmp_path, "http://127.0.0.1:9/v1", patience_s=0))
    assert load_model(_patient(tmp_path, "http://127.0.0.1:9/v1", "p")).patience == PATIENCE


def test_check_probe_of_a_keepalive_server_ends_within_the_patience_in_one_line(fake, tmp_path):
    srv = fake(mode="keepalive", beat=0.5)
    card = _patient(tmp_path, srv.base_url)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "run.py", "check", "--probe", str(card)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 1
    assert r.stdout.count("\n") == 1 and "no token within 2 s" in r.stdout and str(card) in r.stdout, r.stdout
    assert "Traceback" not in r.stderr
    assert took < PATIENCE + 15  # a cold interpreter start on a busy machine included


def test_check_has_a_deadline_even_where_each_wait_is_within_patience(fake, tmp_path):
    srv = fake(mode="keepalive", beat=0.5)
    card = _card(tmp_path, srv.base_url, patience_s=600)
    r = subprocess.run([sys.executable, "-c", "import sys, performance.check as c; c.SERVED_DEADLINE_S = 3; "
                        "from performance.cli import main; sys.exit(main(sys.argv[1:]))", "check", "--probe",
                        str(card)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no token before the deadline" in r.stdout, r.stdout + r.stderr


# ---- the command line: one line, no traceback, sockets closed -------------------------------------
def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "run.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _one_line(r: subprocess.CompletedProcess, *words: str) -> str:
    assert "Traceback" not in r.stderr and "ResourceWarning" not in r.stderr and "unclosed" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_sample_with_the_server_gone_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    r = _cli("sample", str(_card(tmp_path, url)), "--seed", "1")
    assert r.returncode == 1 and r.stdout == ""
    _one_line(r, "error:", url, "connection refused")


def test_sample_with_a_stalled_server_is_one_line_within_its_patience(fake, tmp_path):
    srv = fake(mode="keepalive", beat=0.5)
    t0 = time.monotonic()
    r = _cli("sample", str(_patient(tmp_path, srv.base_url)), "--seed", "1")
    assert r.returncode == 1
    _one_line(r, "error:", srv.base_url, "no token within 2 s")
    assert time.monotonic() - t0 < PATIENCE + 15  # a cold interpreter start on a busy machine included


def test_sample_from_a_server_that_answers_nonsense_is_one_line(fake, tmp_path):
    srv = fake(mode="html")
    r = _cli("sample", str(_card(tmp_path, srv.base_url)), "--seed", "1")
    assert r.returncode == 1
    _one_line(r, "error:", f"{srv.base_url}/models", "not the JSON an OpenAI-compatible server sends")


def test_sample_that_ends_mid_continuation_closes_its_socket(fake, tmp_path):
    srv = fake(n_tokens=50)
    r = _cli("sample", str(_card(tmp_path, srv.base_url, continuation=50)), "--words", "3", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["w0", "w1", "w2"]
    # (sample shows warnings as "warning: ...": an unclosed socket reads "warning: unclosed <socket...>")
    assert "unclosed" not in r.stderr and "ResourceWarning" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_bench_with_the_server_gone_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    card = _card(tmp_path, url)
    r = subprocess.run([sys.executable, "-W", "error::ResourceWarning", "run.py", "bench", str(card), "--no-flick",
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    line = _one_line(r, f"bench: skipping {card}", "connection refused")
    assert "no bench for served" not in line


def test_bench_of_a_served_model_runs_through_the_bench_module(fake, tmp_path):
    srv = fake(n_tokens=128)
    from performance.textgen.served_bench import bench_case

    case = bench_case(load_model(_card(tmp_path, srv.base_url)), 0.1)
    assert case["kind"] == "served" and case["engine_tok_s"] > 0 and case["baseline_tok_s"] > 0


def test_the_client_never_imports_the_bench():
    src = (ROOT / "performance" / "textgen" / "served.py").read_text()
    assert "served_bench" not in src and "bench_case" not in src


# ---- one model under another name --------------------------------------------------------------------
def test_a_server_with_one_model_is_played_under_that_models_id_logged_once(fake, tmp_path, caplog):
    path_id = "/models/SmolLM2-135M-Instruct.Q4_1.gguf"  # llama.cpp without --model_alias
    srv = fake(models=[path_id])
    gen = load_model(_card(tmp_path, srv.base_url))
    assert gen.model_id == ALIAS
    caplog.set_level(logging.WARNING, "lectern.served")
    line = gen.probe()
    assert f"serves one model, {path_id!r} (the card names {ALIAS!r})" in line
    for seed in (1, 2):
        s = gen.start(seed)
        assert [s.next(0.8).text for _ in range(6)] == [f" w{i}" for i in range(6)]
    gen.mark_down("test")
    assert _wait(lambda: gen.up, 5)
    s = gen.start(3)
    s.next(0.8)
    assert set(srv.asked) == {path_id}, "requests carry the server's own id"
    said = [r.getMessage() for r in caplog.records if "serves one model" in r.getMessage()
            or "playing that one" in r.getMessage()]
    assert len(said) == 1 and path_id in said[0] and ALIAS in said[0], said


def test_a_server_with_several_models_needs_the_cards_name(fake, tmp_path, caplog):
    srv = fake(models=["llama-70b", "qwen-7b"])
    gen = load_model(_card(tmp_path, srv.base_url))
    with pytest.raises(ServedError, match=r"/models: the server serves llama-70b, qwen-7b, not 'smollm2'"):
        gen.probe()
    core, out = _worker()
    _open(core, 1, _card(tmp_path, srv.base_url, "w"), 6)
    core.pump()
    assert len(_tokens(out, 1)) == 6 and not srv.asked, "the fallback wrote; nothing was asked of the wrong models"
    good = load_model(_card(tmp_path, srv.base_url, "right", model="qwen-7b"))
    assert "serves 'qwen-7b'" in good.probe()


def test_check_probe_names_the_model_a_single_model_server_is_played_under(fake, tmp_path):
    srv = fake(models=["/m/x.gguf"])
    r = _cli("check", "--probe", str(_card(tmp_path, srv.base_url)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "serves one model, '/m/x.gguf' (the card names 'smollm2')" in r.stdout


# ---- the whole runtime: the transcript says so ----------------------------------------------------
def test_a_show_on_a_keepalive_server_goes_on_with_the_fallback_and_the_transcript_says_so(fake, tmp_path):
    srv = fake(mode="keepalive", beat=0.5)
    card = _patient(tmp_path, srv.base_url)
    sl = tmp_path / "served.toml"
    sl.write_text(f'name = "served-stall"\n[[scene]]\nfile = "{ROOT / "scenes" / "served.toml"}"\n'
                  f'model = "{card}"\nfallback = "markov"\nduration = 30\n'
                  f'pacing = {{ reveal = "words", rate = 12, hold = 0.5 }}\n')
    sessions = tmp_path / "sessions"
    r = subprocess.run([sys.executable, "run.py", "play", str(sl), "--headless", "--window", "320x180", "--duration",
                        "16", "--quiet", "--osc-port", "0", "--transcript-dir", str(sessions)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    ev = [json.loads(ln) for f in sessions.glob("*.jsonl") for ln in f.read_text().splitlines() if ln.strip()]
    err = next(e for e in ev if e["event"] == "error")
    assert "no token within 2 s (patience_s)" in err["detail"] and err["fallback"] == "markov"
    down = next(e for e in ev if e["event"] == "served" and not e["up"])
    assert "no token within 2 s" in down["detail"]
    start = next(e["t"] for e in ev if e["event"] == "poem_start")
    tokens = [e for e in ev if e["event"] == "token"]
    assert tokens and PATIENCE <= tokens[0]["t"] - start < PATIENCE + 1.0, "the fallback writes within the patience"
    assert err["t"] - start < PATIENCE + 1.0
    assert len(tokens) >= 20, "and goes on writing"
