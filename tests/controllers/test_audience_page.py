"""The audience page as a hostile network sees it (issue 31 item 5): a real RemoteServer on
loopback with an [audience], aiohttp clients bound to 127.0.0.x source addresses, and a stand-in
for the engine that answers each word (the engine's own checks: tests/engine/test_audience_words.py;
the page in real Chromium against a real show: tests/system/test_audience_chromium.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading

import pytest

aiohttp = pytest.importorskip("aiohttp")

from performance.controllers import auth  # noqa: E402
from performance.controllers.remote import RemoteServer  # noqa: E402
from performance.show.audience_settings import AudienceSettings  # noqa: E402

SETTINGS = AudienceSettings(words=True, blocklist=frozenset({"grim"}), max_chars=16, per_client_per_minute=1,
                            total_per_minute=10)


class Engine:
    """Answers every command it is given (as the engine would a word it takes), and keeps them."""

    def __init__(self, q: queue.Queue) -> None:
        self.q, self.got, self._stop = q, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                cmd = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            self.got.append(cmd)
            cmd.reply(True, f"thank you: {cmd.args[0]!r}")

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(1)


@pytest.fixture
def served():
    made = []

    def make(settings=SETTINGS, state="on"):
        q = queue.Queue()
        r = RemoteServer(q, host="127.0.0.1", port=0, scene_names=lambda: ["one"], budget=auth.GuessBudget(),
                         guess_log=auth.GuessLog(), audience=settings)
        r.start()
        r.publish_state({"scene": [1, "one"], "audience": state})
        e = Engine(q)
        made.append((r, e))
        return r, e

    yield make
    for r, e in made:
        r.stop()
        e.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def post(r, body, ip="127.0.0.1", origin="own", raw: bytes | None = None, path="/audience/word"):
    own = f"http://127.0.0.1:{r.port}"
    headers = {"Origin": own if origin == "own" else origin} if origin else {}
    conn = aiohttp.TCPConnector(local_addr=(ip, 0), force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        data = raw if raw is not None else json.dumps(body).encode()
        async with s.post(own + path, data=data, headers={**headers, "Content-Type": "application/json"}) as resp:
            return resp.status, await resp.text()


def one_line(text: str) -> str:
    assert "Traceback" not in text and "\n" not in text.strip() and len(text) < 200, text
    try:
        return json.loads(text)["detail"]
    except ValueError:
        return text


def test_a_word_reaches_the_engine_as_an_audience_word_only(served):
    r, e = served()
    status, text = run(post(r, {"type": "word", "word": " Lantern "}))
    assert status == 200 and json.loads(text) == {"ok": True, "detail": "thank you: 'lantern'"}
    [cmd] = e.got
    assert (cmd.address, cmd.args, cmd.source, cmd.sender[0]) == ("/lectern/audience/word", ("lantern",), "audience",
                                                                  "127.0.0.1")


def test_page_and_offer_need_no_token_and_carry_no_state(served):
    r, _ = served(AudienceSettings(words=True, offer=3, choices=("salt", "ember", "river", "stone")))

    async def get(path):
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{r.port}{path}") as resp:
            return resp.status, await resp.text(), resp.headers

    status, page, headers = run(get("/audience"))
    assert status == 200 and "audience.js" in page and "default-src 'self'" in headers["Content-Security-Policy"]
    status, text, _ = run(get("/audience/offer"))
    offer = json.loads(text)
    assert status == 200 and set(offer) == {"open", "offer", "max_chars"} and offer["open"] is True
    assert len(offer["offer"]) == 3 and set(offer["offer"]) <= {"salt", "ember", "river", "stone"}
    status, text = run(post(r, {"type": "word", "word": "lantern"}))  # offered words only
    assert status == 400 and "offered" in one_line(text)


def test_flood_from_many_addresses_is_held_to_the_limits(served):
    r, e = served()

    async def flood():
        jobs = [post(r, {"type": "word", "word": "salt"}, ip=f"127.0.0.{2 + i % 40}") for i in range(120)]
        return await asyncio.gather(*jobs)

    got = run(flood())
    assert sum(s == 200 for s, _ in got) == 10 and len(e.got) == 10  # total_per_minute
    refused = [one_line(t) for s, t in got if s != 200]
    assert len(refused) == 110 and all(s == 429 for s, _ in got if s != 200)
    assert all(x.startswith(("slow down", "many words")) for x in refused)


@pytest.mark.parametrize("body, raw, status, says", [
    ({"type": "word", "word": "x" * 300}, None, 400, "at most 16"),
    (None, b'{"type": "word", "word": "' + b"x" * 5000 + b'"}', 413, "at most 512 bytes"),
    ({"type": "word", "word": "<script>alert(1)</script>"}, None, 400, "at most 16"),
    ({"type": "word", "word": "<b>hi</b>"}, None, 400, "letters only"),
    ({"type": "word", "word": "two words"}, None, 400, "letters only"),
    ({"type": "word", "word": "grim"}, None, 400, "not this one"),
    ({"type": "word", "word": ["salt"]}, None, 400, "a text"),
    ({"type": "command", "address": "/lectern/go"}, None, 400, "only a word"),
    ({"type": "command", "word": "go"}, None, 400, "only a word"),
    ({"type": "word", "word": "salt", "address": "/lectern/quit"}, None, 400, "only a word"),
    ({"type": "connect", "passcode": "x"}, None, 400, "only a word"),
    (None, b"not json", 400, "send {"),
    (None, b"[" * 3000 + b"]" * 3000, 413, "bytes"),
    (None, b"\xff\xfe", 400, "send {"),
])
def test_abuse_is_refused_in_one_short_line(served, caplog, body, raw, status, says):
    r, e = served()
    with caplog.at_level(logging.DEBUG):
        got_status, text = run(post(r, body, raw=raw))
    assert got_status == status and says in one_line(text)
    assert e.got == [] and r.counts["internal"] == 0
    assert not [x for x in caplog.records if x.exc_info or "Traceback" in x.getMessage()]


def test_foreign_origin_and_no_origin_are_refused(served):
    r, e = served()
    for origin in ("http://evil.example", f"http://localhost.evil.example:{r.port}", None):
        status, text = run(post(r, {"type": "word", "word": "salt"}, origin=origin))
        assert status == 403 and one_line(text) == "this page only answers its own page"
    assert e.got == [] and r.audience.counts["origin_refused"] == 3


def test_other_paths_and_methods_reach_nothing(served):
    r, e = served()

    async def probe():
        out = []
        own = f"http://127.0.0.1:{r.port}"
        async with aiohttp.ClientSession() as s:
            for method, path in (("GET", "/audience/word"), ("POST", "/ws"), ("POST", "/audience/go"),
                                 ("POST", "/audience/word/../../ws"), ("GET", "/admin"), ("PUT", "/audience/word"),
                                 ("POST", "/"), ("GET", "/audience/offer/../../remote.js?x")):
                async with s.request(method, own + path, headers={"Origin": own}, data=b'{"type":"word","word":"a"}') as resp:
                    out.append((method, path, resp.status, await resp.text()))
            # the operator's socket, from the audience page's origin without the token: no state, no commands
            async with s.ws_connect(own + "/ws", headers={"Origin": own}) as ws:
                await ws.send_str(json.dumps({"type": "command", "address": "/lectern/go", "id": 1}))
                seen = [json.loads((await ws.receive(timeout=3)).data) for _ in range(2)]
        return out, seen

    out, seen = run(probe())
    for method, path, status, text in out:
        if path.startswith("/audience/offer") or path == "/remote.js":
            continue
        assert status in (404, 405), (method, path, status)
        assert "Traceback" not in text and len(text) < 200
    assert [m["type"] for m in seen] == ["hello", "reply"] and "passcode first" in seen[1]["detail"]
    assert e.got == []


def test_the_operator_switch_reaches_the_page(served):
    r, e = served()
    r.publish_state({"scene": [1, "one"], "audience": "off"})
    status, text = run(post(r, {"type": "word", "word": "salt"}))
    assert status == 403 and "off" in one_line(text) and e.got == []
    r.publish_state({"scene": [1, "one"], "audience": "on"})
    assert run(post(r, {"type": "word", "word": "salt"}))[0] == 200


def test_no_audience_table_no_audience_page():
    r = RemoteServer(queue.Queue(), host="127.0.0.1", port=0, budget=auth.GuessBudget(), guess_log=auth.GuessLog())
    r.start()
    try:
        async def get():
            async with aiohttp.ClientSession() as s:
                a = await s.get(f"http://127.0.0.1:{r.port}/audience")
                b = await s.post(f"http://127.0.0.1:{r.port}/audience/word", data=b"{}")
                return a.status, b.status

        assert run(get()) == (404, 404)
    finally:
        r.stop()


def test_the_pipe_makes_words_only_from_word_messages(monkeypatch):
    """The show's side of the remote's pipe: a "cmd" naming a network=False command (quit, the
    audience word) is refused even if the child sent it; a "word" becomes a source-audience word."""
    from performance.controllers.remote_process import RemoteProcess

    q: queue.Queue = queue.Queue()
    sent = []

    class Pipe:
        def send(self, msg):
            sent.append(msg)

    rp = RemoteProcess(q, audience=SETTINGS.to_dict())
    try:
        rp._conn = Pipe()
        rp._handle(("cmd", 1, "quit", [], "127.0.0.9", 0.0, False))
        rp._handle(("cmd", 2, "audience/word", ["salt"], "127.0.0.9", 0.0, False))
        assert q.empty() and [m[:3] for m in sent] == [("reply", 1, False), ("reply", 2, False)]
        rp._handle(("word", 3, "salt", "127.0.0.9", 1.5))
        cmd = q.get_nowait()
        assert (cmd.address, cmd.args, cmd.source, cmd.sender, cmd.received) == (
            "/lectern/audience/word", ("salt",), "audience", ("127.0.0.9", 0), 1.5)
        cmd.reply(True, "thank you")
        assert sent[-1] == ("reply", 3, True, "thank you")
        RemoteProcess(q)._handle(("word", 4, "salt", "127.0.0.9", 1.5))  # no [audience]: the word is dropped
        assert q.empty()
    finally:
        rp._conn = None
        auth.shared_budget().unshare()


def test_a_reloaded_audience_table_retunes_the_page(served):
    r, e = served()
    assert run(post(r, {"type": "word", "word": "ember"}))[0] == 200
    r.audience.retune(AudienceSettings(words=True, blocklist=frozenset({"salt"}), per_client_per_minute=5))
    status, text = run(post(r, {"type": "word", "word": "salt"}))
    assert status == 400 and "not this one" in one_line(text)  # the new blocklist
    assert run(post(r, {"type": "word", "word": "river"}))[0] == 200  # the new limit: 5 a minute
    r.audience.retune(None)  # the table is gone from the setlist
    status, text = run(post(r, {"type": "word", "word": "stone"}))
    assert status == 403 and "off" in one_line(text)
    assert [c.args[0] for c in e.got] == ["ember", "river"]
