"""The phone remote as a hostile network sees it (issue 27): origins, tokens, the guess budget,
deadlines and caps, crafted messages. A real RemoteServer on loopback, aiohttp clients bound to
127.0.0.x source addresses; no browser (tests/system/test_remote_xsite.py has the Chromium case)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import queue
import socket
import time

import pytest

aiohttp = pytest.importorskip("aiohttp")

from performance.controllers import auth, remote  # noqa: E402
from performance.controllers.remote import RemoteServer  # noqa: E402
from performance.protocol.commands import CommandError, interpret  # noqa: E402

SCENES = ["first light", "second wind"]


@pytest.fixture
def make_server():
    made = []

    def make(passcode=None, **kw):
        q = queue.Queue()
        r = RemoteServer(q, host="127.0.0.1", port=0, passcode=passcode, scene_names=lambda: list(SCENES),
                         budget=kw.pop("budget", auth.GuessBudget()), guess_log=kw.pop("guess_log", auth.GuessLog()),
                         **kw)
        r.start()
        r.publish_state({"scene": [1, SCENES[0]], "temperature": 0.7})
        made.append(r)
        return r, q

    yield make
    for r in made:
        r.stop()


def own(r) -> str:
    return f"http://127.0.0.1:{r.port}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def session(ip: str = "127.0.0.1"):
    conn = aiohttp.TCPConnector(local_addr=(ip, 0), force_close=True, limit=0)
    return aiohttp.ClientSession(connector=conn)


async def messages(ws, seconds: float) -> list[dict]:
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            m = await ws.receive(timeout=max(0.01, end - time.monotonic()))
        except TimeoutError:
            break
        if m.type != aiohttp.WSMsgType.TEXT:
            break
        out.append(json.loads(m.data))
    return out


async def until(ws, kind: str, seconds: float = 3.0) -> dict | None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            m = await ws.receive(timeout=max(0.01, end - time.monotonic()))
        except TimeoutError:
            return None
        if m.type != aiohttp.WSMsgType.TEXT:
            return None
        d = json.loads(m.data)
        if d.get("type") == kind:
            return d
    return None


# ---- item 1: only the remote's own page ----------------------------------------------------------
@pytest.mark.parametrize("origin", [None, "null", "http://127.0.0.1:1", "http://evil.example", "https://127.0.0.1:{p}",
                                    "http://127.0.0.1:{p}.evil.example"])
def test_a_websocket_from_another_origin_is_refused_before_anything_is_sent(make_server, origin):
    r, q = make_server()

    async def go():
        async with await session() as s:
            headers = {"Origin": origin.format(p=r.port)} if origin else {}
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await s.ws_connect(own(r) + "/ws?token=" + r.token, headers=headers)
            assert e.value.status == 403

    run(go())
    assert q.empty()
    assert r.counts["connections"] == 0 and r.counts["state_sent"] == 0


def test_a_forged_host_header_is_refused_dns_rebinding(make_server):
    r, _ = make_server()

    async def go():
        async with await session() as s:
            h = {"Origin": f"http://rebound.example:{r.port}", "Host": f"rebound.example:{r.port}"}
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await s.ws_connect(own(r) + "/ws?token=" + r.token, headers=h)
            assert e.value.status == 403

    run(go())


def test_without_the_token_nothing_is_accepted_and_no_state_leaves(make_server):
    r, q = make_server()  # no passcode: the token is the only way in

    async def go():
        async with await session() as s, s.ws_connect(own(r) + "/ws", headers={"Origin": own(r)}) as ws:
            hello = await until(ws, "hello")
            assert hello == {"type": "hello", "passcode": False, "authorised": False, "token_refused": False}
            await ws.send_str(json.dumps({"type": "command", "address": "/lectern/go", "id": 1}))
            await ws.send_str(json.dumps({"type": "connect", "passcode": "guess"}))
            got = await messages(ws, 1.5)
        assert not any(m["type"] == "state" for m in got)
        assert "first light" not in json.dumps(got)  # not even the scene names
        assert [m["ok"] for m in got] == [False, False]

    run(go())
    assert q.empty()


def test_the_token_from_the_announced_url_opens_the_show(make_server):
    r, q = make_server()
    assert r.token_url.startswith(f"http://127.0.0.1:{r.port}/#token=")
    assert len(r.token) >= 32 and r.token not in r.url
    assert r.token in r.qr_text() or True  # the QR code is the token URL (segno draws it)

    async def go():
        async with await session() as s, s.ws_connect(own(r) + "/ws?token=" + r.token,
                                                      headers={"Origin": own(r)}) as ws:
            a = await until(ws, "auth")
            assert a["ok"] and a["scenes"] == SCENES
            assert await until(ws, "state")
            await ws.send_str(json.dumps({"type": "command", "address": "/lectern/go", "id": 7}))
            cmd = await asyncio.to_thread(q.get, True, 3)
            assert cmd.address == "/lectern/go"
        async with await session() as s, s.ws_connect(own(r) + "/ws?token=" + "x" * 32,
                                                      headers={"Origin": own(r)}) as ws:
            hello = await until(ws, "hello")
            assert hello["token_refused"] and not hello["authorised"]

    run(go())


def test_localhost_and_the_lan_address_are_own_origins():
    r = RemoteServer(queue.Queue(), host="0.0.0.0", port=0)
    r.start()
    try:
        assert f"http://127.0.0.1:{r.port}" in r.origins and f"http://localhost:{r.port}" in r.origins
        assert r.url.rstrip("/") in r.origins  # the URL the QR code carries
    finally:
        r.stop()


def test_open_network_needs_a_passcode_or_an_explicit_flag():
    from performance.controllers.registry import add_controller_arguments, check_controller_args

    p = argparse.ArgumentParser()
    add_controller_arguments(p)  # OSC's options are the OSC controller's own
    setlist = argparse.Namespace(midi=None, midi_map=None)
    problem = check_controller_args(p.parse_args(["--osc-host", "0.0.0.0"]), setlist)
    assert problem and "--allow-open-network" in problem and "\n" not in problem
    assert check_controller_args(p.parse_args(["--osc-host", "0.0.0.0", "--allow-open-network"]), setlist) is None
    assert check_controller_args(p.parse_args(["--osc-host", "0.0.0.0", "--osc-passcode", "x"]), setlist) is None
    assert check_controller_args(p.parse_args([]), setlist) is None
    assert check_controller_args(p.parse_args(["--osc-host", "0.0.0.0", "--osc-port", "0"]), setlist) is None
    # the remote always has its token: open to the LAN it is still protected
    assert check_controller_args(p.parse_args(["--remote", "0", "--remote-host", "0.0.0.0"]), setlist) is None
    assert auth.open_network_refusal(osc_host=None, osc_passcode=None, remote_host="0.0.0.0", remote_token=False)


# ---- item 2: one guess budget ------------------------------------------------------------------------
def test_guesses_from_many_addresses_share_one_budget_and_the_token_still_gets_in(make_server, caplog):
    budget, glog = auth.GuessBudget(limit=10, window=60), auth.GuessLog(interval=10)
    r, _ = make_server(passcode="lantern", budget=budget, guess_log=glog)
    answers = []

    async def guess(ip: str) -> None:
        async with await session(ip) as s, s.ws_connect(own(r) + "/ws", headers={"Origin": own(r)}) as ws:
            await until(ws, "hello")
            for i in range(3):
                await ws.send_str(json.dumps({"type": "connect", "passcode": f"guess{i}"}))
                answers.append((await until(ws, "auth"))["detail"])

    async def go():
        await asyncio.gather(*(guess(f"127.0.3.{i}") for i in range(1, 21)))  # 60 guesses, 20 addresses
        async with await session("127.0.0.1") as s, s.ws_connect(own(r) + "/ws?token=" + r.token,
                                                                 headers={"Origin": own(r)}) as ws:
            assert (await until(ws, "auth"))["ok"]  # the operator's QR code: never locked out

    with caplog.at_level(logging.WARNING, logger="lectern.auth"):
        run(go())
    assert answers.count("wrong passcode") <= 10
    assert sum("too many wrong guesses" in a for a in answers) >= 50
    assert budget.checked <= 10
    lines = [rec for rec in caplog.records if rec.name == "lectern.auth"]
    assert 1 <= len(lines) <= 2, [rec.getMessage() for rec in lines]


def test_guess_log_summarises_per_interval():
    now = [0.0]
    records = []

    class L:
        def warning(self, fmt, *a):
            records.append(fmt % a)

    g = auth.GuessLog(interval=10, clock=lambda: now[0], logger=L())
    for i in range(200):
        g.note(f"127.0.0.{i % 50}", "remote")
        now[0] += 0.01
    assert len(records) == 1  # the first, at once
    now[0] += 10
    g.flush()
    assert len(records) == 2 and "199 wrong passcodes" in records[1] and "50 addresses" in records[1]


def test_budget_refunds_a_right_passcode_and_recovers_after_the_window():
    now = [0.0]
    b = auth.GuessBudget(limit=3, window=60, clock=lambda: now[0])
    gate = auth.Gate(passcode="pw", token="t" * 32, channel="test", budget=b, guess_log=auth.GuessLog(interval=1e9))
    assert gate.check_passcode("pw", "a") is auth.Verdict.OK
    assert [gate.check_passcode("x", "a") for _ in range(4)][-1] is auth.Verdict.BUSY
    assert gate.check_passcode("pw", "a") is auth.Verdict.BUSY  # not even compared
    assert gate.check_token("t" * 32) and not gate.check_token("t" * 31) and not gate.check_token(["t"])
    now[0] = 61
    assert gate.check_passcode("pw", "a") is auth.Verdict.OK


# ---- item 3: the legitimate controller always gets in ---------------------------------------------
def test_an_unauthenticated_socket_has_a_deadline(make_server):
    r, _ = make_server(passcode="lantern")

    async def go():
        async with await session() as s, s.ws_connect(own(r) + "/ws", headers={"Origin": own(r)}) as ws:
            t0 = time.monotonic()
            await messages(ws, remote.AUTH_DEADLINE_S + 2)
            assert ws.closed or (await ws.receive(timeout=0.5)).type in (aiohttp.WSMsgType.CLOSE,
                                                                           aiohttp.WSMsgType.CLOSED)
            assert time.monotonic() - t0 < remote.AUTH_DEADLINE_S + 2

    run(go())


def test_per_address_cap_on_unauthenticated_sockets(make_server):
    r, _ = make_server(passcode="lantern")

    async def go():
        async with await session("127.0.0.9") as s:
            socks = [await s.ws_connect(own(r) + "/ws", headers={"Origin": own(r)}) for _ in range(10)]
            await asyncio.sleep(0.3)
            assert len([c for c in r._clients if c.ip == "127.0.0.9"]) <= remote.MAX_PENDING_PER_IP
            for w in socks:
                await w.close()

    run(go())


def test_a_reconnect_storm_and_slow_headers_do_not_keep_the_phone_out(make_server):
    r, _ = make_server(passcode="lantern")
    stop = asyncio.Event
    worst = []

    async def storm(ip: str, done) -> None:
        async with await session(ip) as s:
            while not done.is_set():
                try:
                    async with s.ws_connect(own(r) + "/ws", headers={"Origin": own(r)}) as ws:
                        async for _ in ws:
                            if done.is_set():
                                break
                except (aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.01)

    async def slow(ip: str, done) -> None:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", r.port, local_addr=(ip, 0))
        except OSError:
            return
        w.write(b"GET / HTTP/1.1\r\n")
        while not done.is_set():
            await asyncio.sleep(0.5)
            try:
                w.write(b"X-a: b\r\n")
            except (OSError, RuntimeError):
                break
        w.close()

    async def go():
        done = stop()
        tasks = [asyncio.create_task(storm(f"127.0.4.{i}", done)) for i in range(1, 41)]
        tasks += [asyncio.create_task(slow(f"127.0.5.{1 + i % 100}", done)) for i in range(300)]
        await asyncio.sleep(1.5)
        for _ in range(5):
            t0 = time.monotonic()
            async with await session("127.0.0.1") as s, s.ws_connect(own(r) + "/ws?token=" + r.token,
                                                                     headers={"Origin": own(r)}) as ws:
                assert await until(ws, "state", 3.0), "the phone did not get in"
                worst.append(time.monotonic() - t0)
            assert len(r._conns) <= remote.MAX_CONNS
            await asyncio.sleep(0.3)
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    run(go())
    assert max(worst) < 1.0, worst
    assert r.counts["deadline"] > 0 or r.counts["evicted"] > 0


def test_slow_headers_time_out(make_server):
    r, _ = make_server()
    s = socket.create_connection(("127.0.0.1", r.port))
    s.sendall(b"GET / HTTP/1.1\r\n")
    s.settimeout(remote.HEADER_TIMEOUT_S + 2)
    t0 = time.monotonic()
    try:
        while True:
            s.sendall(b"X-a: b\r\n")
            time.sleep(0.5)
            if time.monotonic() - t0 > remote.HEADER_TIMEOUT_S + 2:
                pytest.fail("a slow header was never cut off")
    except OSError:
        pass
    finally:
        s.close()
    assert time.monotonic() - t0 < remote.HEADER_TIMEOUT_S + 2


def test_the_page_is_served_and_closes_its_connection(make_server):
    r, _ = make_server()

    async def go():
        async with await session() as s, s.get(own(r) + "/") as resp:
            assert resp.status == 200 and "Lectern remote" in await resp.text()
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]

    run(go())


# ---- item 4: no traceback from any message ------------------------------------------------------
CRAFTED = [
    ("[" * 2000 + "]" * 2000, "message"),
    ('{"a":' * 50 + "1" + "}" * 50, "message"),
    (json.dumps({"type": "command", "address": "/lectern/seed", "args": [int("9" * 400)], "id": 1}), "seed"),
    (json.dumps({"type": "command", "address": "/lectern/temperature", "args": [int("9" * 400)], "id": 2}),
     "temperature"),
    (json.dumps({"type": "command", "address": "/lectern/scene", "args": [-int("9" * 400)]}), "scene"),
    ('{"type": "command", "address": "/lectern/volume", "args": [1e999]}', "args[0]"),
    ('{"type": "command", "address": "/lectern/volume", "args": [NaN]}', "message"),
    (json.dumps({"type": "command", "address": "/lectern/prompt", "args": ["x" * 3000]}), "args[0]"),
    (json.dumps({"type": "command", "address": "/lectern/" + "x" * 1000}), "address"),
    (json.dumps({"type": "command", "address": 5}), "address"),
    (json.dumps({"type": "command", "address": "/lectern/go", "args": {"a": 1}}), "args"),
    (json.dumps({"type": "command", "address": "/lectern/go", "args": [[1]]}), "args[0]"),
    (json.dumps({"type": "command", "address": "/lectern/temperature", "args": [None]}), "args[0]"),
    (json.dumps({"type": "command", "address": "/lectern/go", "id": "x" * 500}), "id"),
    (json.dumps({"type": "command", "address": "/lectern/go", "id": {"a": 1}}), "id"),
    (json.dumps({"type": ["command"]}), "type"),
    (json.dumps({"type": "connect", "passcode": ["x"] * 10}), "passcode"),
    (json.dumps({"type": "connect", "passcode": "x" * 3000}), "passcode"),
    (json.dumps([1, 2, 3]), "message"),
    ("nope", "message"),
    ("", "message"),
]


def test_each_crafted_message_gets_one_reply_naming_the_field(make_server):
    r, q = make_server()

    async def go():
        async with await session() as s, s.ws_connect(own(r) + "/ws?token=" + r.token,
                                                      headers={"Origin": own(r)}) as ws:
            assert (await until(ws, "auth"))["ok"]
            for text, field in CRAFTED:
                await ws.send_str(text)
                got = [m for m in await messages(ws, 0.4) if m["type"] in ("reply", "auth")]
                assert len(got) == 1, (text[:60], got)
                assert not got[0]["ok"] and field in got[0]["detail"], (text[:60], got[0])

    run(go())
    assert r.counts["internal"] == 0
    assert q.empty()


def test_deep_json_before_authentication_is_one_reply(make_server):
    r, _ = make_server(passcode="lantern")

    async def go():
        async with await session() as s, s.ws_connect(own(r) + "/ws", headers={"Origin": own(r)}) as ws:
            await until(ws, "hello")
            await ws.send_str("[" * 2000 + "]" * 2000)
            got = await messages(ws, 0.5)
            assert len(got) == 1 and "message" in got[0]["detail"]

    run(go())
    assert r.counts["internal"] == 0


def test_interpret_refuses_ints_beyond_float_range():
    for address in ("/lectern/seed", "/lectern/temperature", "/lectern/scene", "/lectern/caption"):
        with pytest.raises(CommandError, match=address):
            interpret(address, (10**400,), 3)


def test_fuzz_remote_message_shapes(make_server):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from performance.controllers.osc.help import COMMANDS

    r, q = make_server()
    addresses = [f"/lectern/{c.name}" for c in COMMANDS] + ["/lectern/nope", "", "/x"]
    scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**500, max_value=10**500),
                       st.floats(allow_nan=False, allow_infinity=True), st.text(max_size=50),
                       st.text(min_size=1900, max_size=2100, alphabet="ab"))
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                              inner, max_size=3),
                         max_leaves=6)
    message = st.fixed_dictionaries({"type": st.sampled_from(["command", "connect", "nope"]) | value},
                                    optional={"address": st.sampled_from(addresses) | value,
                                              "args": st.lists(value, max_size=10) | value,
                                              "id": value, "passcode": value})
    client = {}

    async def open_ws():
        client["s"] = await session()
        client["ws"] = await client["s"].ws_connect(own(r) + "/ws?token=" + r.token, headers={"Origin": own(r)})
        await until(client["ws"], "auth")

    import threading

    done = threading.Event()

    def engine():  # the engine's part: answer whatever was accepted
        while not done.is_set():
            try:
                cmd = q.get(timeout=0.05)
            except queue.Empty:
                continue
            if cmd.reply:
                cmd.reply(True, "done")

    threading.Thread(target=engine, daemon=True).start()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(open_ws())

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(message)
    def one(msg):
        text = json.dumps(msg)
        if len(text.encode()) > remote.MAX_FRAME:
            return

        async def exchange():
            ws = client["ws"]
            await ws.send_str(text)
            got = []
            while True:
                m = await ws.receive(timeout=2)
                assert m.type == aiohttp.WSMsgType.TEXT, (text[:80], m)
                d = json.loads(m.data)
                if d["type"] in ("reply", "auth"):
                    got.append(d)
                    break
            return got

        got = loop.run_until_complete(exchange())
        assert len(got) == 1
        if not got[0]["ok"]:
            assert got[0]["detail"].split(":")[0] in {"message", "id", "type", "address", "args", "passcode", "token",
                                                       "auth", "busy", "already connected"} or \
                got[0]["detail"].startswith(("args[", "wrong")), got[0]

    try:
        one()
    finally:
        done.set()
        loop.run_until_complete(client["ws"].close())
        loop.run_until_complete(client["s"].close())
        loop.close()
    assert r.counts["internal"] == 0
