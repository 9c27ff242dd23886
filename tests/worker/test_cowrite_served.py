"""Co-writing with a served model (a real llama.cpp server with SmolLM2, on loopback): the
candidates are the server's top logprob tokens, and a forced continuation sends the chosen word as
the context of the next request, so what follows is what the model writes after it."""

from __future__ import annotations

import pytest
from served_server import LlamaServer, missing, write_card

from performance.protocol.worker import Force, Grant, Open, TokenOut
from performance.show.cowrite_settings import CowriteSettings
from performance.textgen import load_model
from performance.textgen.base import XraySpec
from performance.textgen.lengths import LengthRule
from performance.worker.core import WorkerCore
from performance.worker.cowrite import starts_word


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    s = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log")
    s.start()
    # greedy and no repeat penalty: the continuation after the forced word is reproducible
    yield write_card(tmp_path_factory.mktemp("models") / "smollm2", s.base_url, timeout=10.0, first_token_timeout=60.0,
                     retry_s=0.5, patience_s=60.0, top_logprobs=8, extra={"repeat_penalty": 1.0})
    s.stop()


def test_served_candidates_are_its_logprobs_and_a_pick_is_the_next_requests_context(card):
    out: list = []
    core = WorkerCore(out.append)
    # an x-ray scene keeps the tokens' top-k: the candidates can be checked against them
    core.handle(Open(1, str(card), 5, "", LengthRule("words", 400), xray=XraySpec(k=8), cowrite=CowriteSettings()))
    core.handle(Grant(1, (0.0,) * 24))
    core.pump()
    toks = [m.token for m in out if isinstance(m, TokenOut) and m.id == 1]
    offered = [t for t in toks if getattr(t, "words", None)]
    assert offered, [t.text for t in toks]
    prev = ""
    for t in toks:
        if getattr(t, "words", None):
            want = [w for w, _ in t.top if starts_word(prev, w) and w.strip()[-1:].isalnum()][:5]
            assert [w for w, _ in t.words] == want[:len(t.words)] and 1 <= len(t.words) <= 5
        prev += t.text
    text = "".join(t.text for t in toks) + " moon"
    core.handle(Force(1, 2, text))
    core.handle(Grant(2, (0.0,) * 8))
    core.pump()
    after = "".join(m.token.text for m in out if isinstance(m, TokenOut) and m.id == 2)
    ref = load_model(card).start(5, "")
    ref.text = text
    assert after == "".join(ref.next(0.0).text for _ in range(8))  # written from the chosen word
