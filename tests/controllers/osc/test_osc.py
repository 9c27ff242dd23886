"""OSC over real UDP and TCP sockets: state feedback timing, TCP framing, a port in use, fuzzing;
and liblo's oscsend/oscdump (a client this project did not write) against a headless engine."""

from __future__ import annotations

import json
import queue
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osc_client import Client, free_port, msg, replies, slip  # noqa: F401  (also used by other tests)
from pythonosc.osc_message import OscMessage

from performance.controllers.osc import OscServer
from performance.controllers.osc.help import COMMANDS, table_text
from performance.protocol.commands import interpret
from performance.show.clock import FakeClock


class FakeEngine:
    """The test harness plays the engine: a thread that takes Commands from the inbox and answers ok."""

    def __init__(self, inbox: queue.Queue) -> None:
        self.inbox, self.got, self._stop = inbox, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                c = self.inbox.get(timeout=0.02)
            except queue.Empty:
                continue
            self.got.append(c)
            c.reply(True, "applied")

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(1)


@pytest.fixture
def server():
    srv = OscServer(queue.Queue(maxsize=4096), host="127.0.0.1", port=0, scene_count=lambda: 4, clock=FakeClock())
    srv.start()
    yield srv
    srv.stop()


def engine_answers(srv: OscServer, seconds: float = 0.3) -> list:
    """Run the fake engine on the server's inbox for a while; the commands it took."""
    eng = FakeEngine(srv.inbox)
    time.sleep(seconds)
    eng.stop()
    return eng.got


def test_interpret_validates_and_clamps():
    assert interpret("/lectern/temperature", (7.5,), 4) == ("temperature", (3.0,))
    assert interpret("/lectern/temperature", (-1,), 4) == ("temperature", (0.0,))
    assert interpret("/lectern/volume", (2.0,), 4) == ("volume", (1.0,))
    assert interpret("/lectern/speed", (0.0,), 4) == ("speed", (0.1,))
    assert interpret("/lectern/scene", (99,), 4) == ("scene", (4,))
    assert interpret("/lectern/scene", ("brerin",), 4) == ("scene", ("brerin",))
    assert interpret("/lectern/voice", (0.0,), 4) == ("voice", (0,))
    assert interpret("/lectern/seed", (12.0,), 4) == ("seed", (12,))
    for bad in [("/lectern/temperature", ("hot",)), ("/lectern/seed", (1.5,)), ("/lectern/nope", ()),
                ("/other/go", ()), ("/lectern/model", (3,)), ("/lectern/temperature", ())]:
        with pytest.raises(ValueError):
            interpret(*bad, 4)
    assert interpret("/lectern/model", ("",), 4) == ("model/release", ())  # the contract: "" releases
    assert "/lectern/temperature" in table_text()


def test_subscribers_get_state_on_change_and_every_second_without_echo(server):
    c = Client(server.port)
    c.send(msg("/lectern/subscribe", c.port))
    state = {"scene": (1, "a"), "standby": (2, "b"), "poem": (3, 10), "temperature": 0.7, "seed": 5,
             "model": "default", "paused": 0, "voice": 1, "volume": 1.0, "health": (1.0, 60.0, 3, 0, 100.0)}
    server.publish_state(state)
    got = c.collect(1.3)
    names = [m[0] for m in got]
    assert "/lectern/state/temperature" in names and "/lectern/state/health" in names
    server.publish_state({**state, "temperature": 1.4})
    got = c.collect(0.3, until=lambda o: any(m == ("/lectern/state/temperature", [pytest.approx(1.4)]) for m in o))
    assert any(m[0] == "/lectern/state/temperature" and abs(m[1][0] - 1.4) < 1e-6 for m in got)
    assert sum(1 for m in c.collect(2.2) if m[0] == "/lectern/state/scene") >= 2  # at least once a second
    # echoing our own state back is ignored: no reply, no loop
    c.send(msg("/lectern/state/temperature", 1.0))
    assert not [m for m in c.collect(0.3) if m[0] == "/lectern/reply"]
    c.send(msg("/lectern/unsubscribe"))
    c.collect(0.3)
    assert not [m for m in c.collect(1.3) if m[0].startswith("/lectern/state")]


MALFORMED = [
    b"", b"\x00", b"/lectern/go", b"/lectern/go\x00", b"/lectern/go\x00\x00\x00\x00,f\x00\x00",
    b"/lectern/temperature\x00\x00\x00\x00,f\x00\x00\x00\x00",  # truncated float
    b"\xff\xfe/bad utf8\x00\x00\x00,\x00\x00\x00", b"#bundle\x00\x00\x00", b"#bundle\x00" + b"\x00" * 8 + b"\x00\x00\x00\x40",
    b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -4), b"/lectern/go\x00,zzz\x00\x00\x00\x00",
    b"x" * 70000,
]


def nest(depth: int) -> bytes:
    inner = msg("/lectern/ping")
    for _ in range(depth):
        inner = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", len(inner)) + inner
    return inner


def send_raw(port: int, data: bytes) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(data, ("127.0.0.1", port))
    except OSError:
        pass
    finally:
        s.close()


def test_malformed_datagrams_never_stop_the_server(server):
    for d in [*MALFORMED, nest(3), nest(50)]:
        send_raw(server.port, d)
    c = Client(server.port)
    c.send(msg("/lectern/ping"))
    assert ("/lectern/pong", []) in c.collect(1.0, until=lambda o: ("/lectern/pong", []) in o)
    assert server.stats()["malformed"] >= 8


def test_state_push_survives_an_odd_value_and_no_subscribe_to_itself(server):
    c = Client(server.port)
    c.send(msg("/lectern/subscribe", server.port))
    assert replies(c.collect(0.3, until=lambda o: o))[0][1:] == ["error", "subscribe: that port is this server's own"]
    c.send(msg("/lectern/subscribe", c.port))
    server.publish_state({"scene": (2, "b"), "temperature": None, "seed": 9})
    got = c.collect(0.5, until=lambda o: ("/lectern/state/seed", [9]) in o)
    assert ("/lectern/state/scene", [2, "b"]) in got and ("/lectern/state/seed", [9]) in got
    assert not [m for m in got if m[0] == "/lectern/state/temperature"]


def test_publish_state_is_cheap_and_change_goes_out_at_once(server):
    c = Client(server.port)
    c.send(msg("/lectern/subscribe", c.port))
    c.collect(0.3)
    times = []
    for i in range(5000):
        t0 = time.perf_counter()
        server.publish_state({"temperature": 0.5, "seed": i})
        times.append(time.perf_counter() - t0)
    times.sort()
    assert times[len(times) // 2] < 20e-6 and times[int(0.99 * len(times))] < 1e-3
    c.collect(1.2)  # let the push settle (and the once-a-second full push pass)
    t0 = time.monotonic()
    server.publish_state({"temperature": 0.5, "seed": 123456})
    got = c.collect(0.5, until=lambda o: ("/lectern/state/seed", [123456]) in o)
    assert ("/lectern/state/seed", [123456]) in got and time.monotonic() - t0 < 0.04  # not the 50 ms poll
    assert ("/lectern/state/temperature", [0.5]) not in got  # unchanged: not sent again before the second


def test_tcp_slip_carries_go_and_panic_and_answers_on_the_connection(server):
    from performance.controllers.osc import slip_decode

    assert server.tcp_port == server.port
    t = socket.create_connection(("127.0.0.1", server.tcp_port), timeout=2)
    try:
        go_with_escapes = msg("/lectern/go")
        t.sendall(slip(go_with_escapes) + slip(msg("/lectern/panic"))[:5])
        t.sendall(slip(msg("/lectern/panic"))[5:] + slip(msg("/lectern/temperature", 1.0)) + slip(msg("/lectern/ping")))
        eng = FakeEngine(server.inbox)
        buf, t0 = b"", time.monotonic()
        while buf.count(b"\xc0") < 10 and time.monotonic() - t0 < 2:
            buf += t.recv(4096)
        eng.stop()
        got = [OscMessage(slip_decode(f)) for f in buf.split(b"\xc0") if f]
        got = [(m.address, list(m.params)) for m in got]
        assert [x.name for x in eng.got] == ["go", "panic"]
        assert ["/lectern/go", "ok", "applied"] in replies(got) and ["/lectern/panic", "ok", "applied"] in replies(got)
        assert any(r[0] == "/lectern/temperature" and r[1] == "error" and "UDP" in r[2] for r in replies(got))
        assert ("/lectern/pong", []) in got
    finally:
        t.close()


def test_slip_round_trip_with_escapes():
    from performance.controllers.osc import slip_decode, slip_encode

    data = bytes([0xC0, 1, 0xDB, 2, 0xDB, 0xDC, 0xC0])
    framed = slip_encode(data)
    assert framed[0] == framed[-1] == 0xC0 and 0xC0 not in framed[1:-1]
    assert slip_decode(framed[1:-1]) == data
    with pytest.raises(ValueError):
        slip_decode(bytes([1, 0xDB, 7]))


FUZZ = {"n": 0, "port": None}


@pytest.fixture(scope="module")
def fuzz_engine(tmp_path_factory):
    """A running headless engine with OSC on a free port (the fuzz target)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([sys.executable, "run.py", "play", "setlists/safe.toml", "--headless", "--window", "320x180",
                             "--quiet", "--osc-port", str(port), "--osc-rate", "1000000", "--duration", "300",
                             "--transcript-dir", str(tmp)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "stderr.log", "w"))
    c = Client(port)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        c.send(msg("/lectern/ping"))
        if ("/lectern/pong", []) in c.collect(0.3):
            break
    FUZZ["port"] = port
    yield proc, port, tmp
    proc.terminate()
    proc.wait(20)


_osc_like = st.builds(
    lambda addr, tags, body: addr + b"\x00" * (4 - len(addr) % 4) + b"," + tags + b"\x00" * (4 - (len(tags) + 1) % 4) + body,
    st.sampled_from([b"/lectern/temperature", b"/lectern/go", b"/lectern/scene", b"/lectern/subscribe", b"/x",
                     b"/lectern/volume", b"#bundle"]),
    st.binary(max_size=6).map(lambda b: bytes(c % 128 for c in b)),
    st.binary(max_size=40),
)


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.one_of(st.binary(max_size=200), _osc_like, st.sampled_from(MALFORMED)))
def test_fuzz_ten_thousand_datagrams_at_a_running_engine(fuzz_engine, data):
    sock = getattr(test_fuzz_ten_thousand_datagrams_at_a_running_engine, "_sock", None)
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        test_fuzz_ten_thousand_datagrams_at_a_running_engine._sock = sock
    try:
        sock.sendto(data, ("127.0.0.1", FUZZ["port"]))
    except OSError:  # oversize for UDP: the kernel refuses it before it reaches anyone
        pass
    FUZZ["n"] += 1
    if FUZZ["n"] % 100 == 0:
        time.sleep(0.005)  # let the receive thread keep up: the parser, not the kernel buffer, is under test


def test_fuzzed_engine_still_answers_and_applies(fuzz_engine):
    proc, port, tmp = fuzz_engine
    assert FUZZ["n"] >= 10_000
    assert proc.poll() is None, "the engine is still running"
    c = Client(port)
    t0, answered = time.monotonic(), False
    while time.monotonic() - t0 < 20 and not answered:  # the backlog of fuzz drains first
        c.send(msg("/lectern/ping"))
        answered = ("/lectern/pong", []) in c.collect(1.0, until=lambda o: ("/lectern/pong", []) in o)
    assert answered
    FUZZ["drain_s"] = time.monotonic() - t0
    log_lines = (tmp / "stderr.log").read_text().splitlines()
    assert len(log_lines) < 200, "malformed packets are logged rate-limited, not one line each"
    c.send(msg("/lectern/temperature", 1.25))
    got = c.collect(2.0, until=lambda o: any(m[0] == "/lectern/reply" and m[1][0] == "/lectern/temperature" for m in o))
    assert ["/lectern/temperature", "ok", "temperature 1.25"] in [m[1] for m in got if m[0] == "/lectern/reply"]


# ---- the real client: liblo's oscsend / oscdump against a headless engine ----------------------------
def oscsend(port: int, address: str, types: str = "", *args) -> None:
    subprocess.run(["oscsend", "localhost", str(port), address, types, *map(str, args)] if types else
                   ["oscsend", "localhost", str(port), address], check=True, timeout=10)


@pytest.fixture
def engine(tmp_path):
    (tmp_path / "set.toml").write_text("""
name = "osc-test"
[[scene]]
name = "one"
model = "markov"
length = { words = 300 }
change_at = "line"
temperature = { program = "constant", value = 0.5 }
pacing = { reveal = "words", rate = 25, hold = 0.2 }
lookahead = 8
originality = false  # the guard writes a whole line before it can judge it: a change lands a line later
[[scene]]
name = "two"
model = "markov"
length = { lines = 3 }
pacing = { reveal = "words", rate = 25, hold = 0.2 }
""")
    port, dump_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "run.py", "play", str(tmp_path / "set.toml"), "--headless", "--window",
                             "320x180", "--quiet", "--osc-port", str(port), "--duration", "40",
                             "--transcript-dir", str(tmp_path / "sessions")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dump = subprocess.Popen(["oscdump", "-L", str(dump_port)], stdout=subprocess.PIPE, text=True)
    # wait until the engine answers a ping (it has started)
    t0 = time.monotonic()
    c = Client(port)
    while time.monotonic() - t0 < 30:
        c.send(msg("/lectern/ping"))
        if ("/lectern/pong", []) in c.collect(0.3):
            break
    yield port, dump_port, dump, proc, tmp_path
    for p in (dump, proc):
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def read_dump(dump: subprocess.Popen, seconds: float) -> list[str]:
    import select

    lines, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds:
        r, _, _ = select.select([dump.stdout], [], [], 0.1)
        if r:
            lines.append(dump.stdout.readline().strip())
    return lines


def test_liblo_client_steers_a_headless_engine(engine):
    port, dump_port, dump, proc, tmp = engine
    oscsend(port, "/lectern/subscribe", "i", dump_port)
    oscsend(port, "/lectern/ping")
    lines = read_dump(dump, 2.0)
    assert any("/lectern/pong" in ln.split() for ln in lines), lines[:5]
    assert any("/lectern/reply" in ln and "/lectern/ping" in ln for ln in lines)
    assert any("/lectern/state/scene" in ln and '"one"' in ln for ln in lines), lines[:5]
    oscsend(port, "/lectern/temperature", "f", 1.75)
    time.sleep(1.5)
    oscsend(port, "/lectern/go")
    lines = read_dump(dump, 4.0)
    assert any("/lectern/state/scene" in ln and '"two"' in ln for ln in lines), "GO advanced the scene"
    # garbage leaves it answering
    for d in MALFORMED:
        send_raw(port, d)
    oscsend(port, "/lectern/ping")
    assert any("/lectern/ping" in ln and "ok" in ln for ln in read_dump(dump, 1.5))
    proc.terminate()
    proc.wait(20)
    jsonl = next((tmp / "sessions").glob("*.jsonl"))
    events = [json.loads(x) for x in jsonl.read_text().splitlines()]
    cmd = next(e for e in events if e["event"] == "command" and e["address"] == "/lectern/temperature")
    after = [e for e in events if e["event"] == "token" and e["t"] >= cmd["t"] and e["poem"] == 1]
    first_new = next(i for i, e in enumerate(after) if e["temperature"] == 1.75)
    assert first_new <= 10, first_new
    assert all(e["temperature"] == 1.75 for e in after[first_new:])


def test_allowlisted_out_sender_is_ignored_by_the_engine(tmp_path):
    port, dump_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "run.py", "play", "setlists/safe.toml", "--headless", "--window", "320x180",
                             "--quiet", "--osc-port", str(port), "--osc-allow", "10.1.2.3", "--duration", "20",
                             "--transcript-dir", str(tmp_path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    dump = subprocess.Popen(["oscdump", "-L", str(dump_port)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        for _ in range(3):
            oscsend(port, "/lectern/subscribe", "i", dump_port)
            oscsend(port, "/lectern/ping")
        assert read_dump(dump, 2.0) == []
    finally:
        for p in (dump, proc):
            p.terminate()
            p.wait(10)


def test_controller_layout_uses_only_known_addresses():
    from performance.controllers.osc.help import SESSION, STATE

    session = json.loads((ROOT / "assets/controllers/lectern-open-stage-control.json").read_text())
    widgets = session["content"]["widgets"]
    known = {f"/lectern/{a.name}" for a in COMMANDS + SESSION} | {f"/lectern/{n}" for n, _, _ in STATE} | {"/lectern/reply"}
    assert {w["address"] for w in widgets} <= known
    by_id = {w["id"]: w for w in widgets}
    assert by_id["panic"]["doubleTap"] is True
    assert by_id["temperature"]["range"] == {"min": 0, "max": 3}
    for need in ("go", "back", "reseed", "voice", "volume", "keep", "scene"):
        assert need in by_id


def test_every_control_of_the_layout_is_accepted_as_the_controller_sends_it(server):
    """What Open Stage Control sends for each widget (a tap sends the button's `on` value, a fader
    its float, a toggle 1/0, an input its text) is accepted; state labels drive controls silently."""
    session = json.loads((ROOT / "assets/controllers/lectern-open-stage-control.json").read_text())
    widgets = session["content"]["widgets"]
    assert len({w["id"] for w in widgets}) == len(widgets)
    sent = []
    for w in widgets:
        if w["address"].startswith("/lectern/state") or w["address"] == "/lectern/reply":
            continue
        if w["type"] == "button":
            sent.append(msg(w["address"], w["on"]))
        elif w["type"] == "fader":
            sent += [msg(w["address"], float(w["range"]["min"])), msg(w["address"], float(w["range"]["max"]))]
        elif w["type"] == "toggle":
            sent += [msg(w["address"], w["on"]), msg(w["address"], w["off"])]
        elif w["type"] == "input":
            sent.append(msg(w["address"], "anything"))
    c = Client(server.port)
    eng = FakeEngine(server.inbox)
    for d in sent:
        c.send(d)
        time.sleep(0.005)  # a performer's pace: faders are not coalesced away here
    got = replies(c.collect(1.0, until=lambda o: len(o) >= len(sent)))
    eng.stop()
    assert len(got) == len(sent) and all(r[1] == "ok" for r in got), [r for r in got if r[1] != "ok"]
    by_id = {w["id"]: w for w in widgets}
    for label, control in (("temperature_now", "temperature"), ("volume_now", "volume"), ("voice_now", "voice")):
        assert by_id[label]["onValue"] == f"set('{control}', value, {{send: false}})"


def test_a_port_in_use_fails_loudly_and_ipv6_loopback_works(server):
    with pytest.raises(OSError):
        OscServer(host="127.0.0.1", port=server.port)  # a second show must not share (and steal) the port
    try:
        srv = OscServer(host="::1", port=0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv.start()
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        s.sendto(msg("/lectern/ping"), ("::1", srv.port))
        assert OscMessage(s.recvfrom(65536)[0]).address == "/lectern/pong"
        s.close()
    finally:
        srv.stop()

