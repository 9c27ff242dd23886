"""Hardening of the OSC path: future-dated floods, frame-gap stats (issue 20)."""

from __future__ import annotations

import socket
import time

from osc_client import Client, msg, replies, slip

from performance.controllers.osc import OscServer
from performance.controllers.osc import guard as guard_mod
from performance.controllers.osc import server as osc_mod
from performance.controllers.osc import session as session_mod
from performance.engine import Engine
from performance.protocol.commands import Command
from performance.runtime.stats import FrameStats
from performance.show.clock import FakeClock
from performance.show.config import load_setlist
from performance.show.timed import MAX_DUE_PER_STEP, MAX_WAITING, MAX_WAITING_PER_SENDER, DueQueue


def setlist(tmp_path):
    p = tmp_path / "set.toml"
    p.write_text('[[scene]]\nmodel = "x"\nlength = { words = 20 }\npacing = { reveal = "words", rate = 20, hold = 0 }\n')
    return load_setlist(p)


def test_future_flood_is_bounded_per_sender_and_in_total_and_applied_a_few_per_step(tmp_path):
    eng = Engine(setlist(tmp_path), session_seed=1)
    eng.start(0.0)
    answers: list[tuple[bool, str]] = []
    cmds = [Command("/lectern/volume", (0.5,), source="osc", sender=(f"127.0.0.{1 + i // 1000}", 9), due=10.0,
                    reply=lambda ok, d: answers.append((ok, d))) for i in range(5000)]
    t0 = time.perf_counter()
    eng.step(1.0, cmds).answer()
    assert len(eng.waiting) == min(MAX_WAITING, 5 * MAX_WAITING_PER_SENDER)
    refused = [a for a in answers if not a[0]]
    assert len(refused) == 5000 - len(eng.waiting) and "busy" in refused[0][1]
    for k in range(200):  # waiting costs nothing per frame
        eng.step(2.0 + k * 0.01)
    assert len(eng.waiting) == min(MAX_WAITING, 5 * MAX_WAITING_PER_SENDER)
    eng.step(10.0)  # all due at once: only a bounded number land on one frame
    assert len(eng.waiting) == min(MAX_WAITING, 5 * MAX_WAITING_PER_SENDER) - MAX_DUE_PER_STEP
    for k in range(100):
        eng.step(10.0 + (k + 1) / 60)
    assert len(eng.waiting) == 0
    assert time.perf_counter() - t0 < 5


def test_due_queue_orders_by_due_time():
    q = DueQueue(total=10, per_sender=10, per_step=2)
    for d in (5.0, 1.0, 3.0):
        assert q.push(Command("/lectern/go", due=d)) is None
    assert [c.due for c in q.due(4.0)] == [1.0, 3.0] and len(q) == 1


def test_stats_report_a_freeze_as_a_long_gap_and_missed_frames():
    s = FrameStats()
    t = 0.0
    for _ in range(10):
        s.frame(0.001, t)
        t += 1 / 60
    s.frame(0.001, t + 6.8)
    out = s.summary(10, 10, None)
    assert out["longest_gap_ms"] >= 6800 and out["frames_missed"] >= 400


# ---- no one let in (issue 20 items 8-11) and settings that stick or lie (issue 12 item 7) ----------


def client_from(ip: str, port: int) -> Client:
    c = Client.__new__(Client)
    c.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.sock.bind((ip, 0))
    c.sock.settimeout(0.05)
    c.server = ("127.0.0.1", port)
    return c


def test_a_forged_subscribe_reflects_nothing_larger_than_itself(monkeypatch):
    srv = OscServer(host="127.0.0.1", port=0, trust_loopback=False)  # as a remote, spoofable sender
    srv.start()
    try:
        attacker, victim = Client(srv.port), Client(srv.port)
        request = msg("/lectern/subscribe", victim.port)
        attacker.send(request)
        srv.publish_state({"scene": (1, "one"), "seed": 3, "model": "markov"})
        at_victim = victim.collect(1.5)
        assert [a for a, _ in at_victim] == ["/lectern/token"]  # 24 bytes for a 28-byte request
        assert attacker.collect(0.2) == []  # its reply would be larger than its request
        assert srv.counts["bytes_out"] <= srv.counts["bytes_in"]
        token = at_victim[0][1][0]
        victim.send(msg("/lectern/subscribe", victim.port, token))  # the real owner of the port answers
        got = victim.collect(1.5, until=lambda o: any(a == "/lectern/state/scene" for a, _ in o))
        assert any(a == "/lectern/state/scene" for a, _ in got)
    finally:
        srv.stop()


def test_subscriptions_lapse_unless_renewed_and_are_capped(monkeypatch):
    monkeypatch.setattr(osc_mod, "SUBSCRIPTION_TTL_S", 0.5)
    monkeypatch.setattr(session_mod, "SUBSCRIPTION_TTL_S", 0.5)
    monkeypatch.setattr(session_mod, "MAX_SUBSCRIBERS", 2)
    srv = OscServer(host="127.0.0.1", port=0)
    srv.start()
    try:
        subs = [client_from(f"127.0.0.{20 + i}", srv.port) for i in range(3)]
        for c in subs:
            c.send(msg("/lectern/subscribe", c.port))
        got = [replies(c.collect(0.4, until=lambda o: any(a == "/lectern/reply" for a, _ in o))) for c in subs]
        assert [g[0][1] for g in got] == ["ok", "ok", "error"]
        time.sleep(1.5)
        srv.publish_state({"scene": (1, "one")})
        time.sleep(0.3)
        assert srv.stats()["subscribers"] == 0 and srv.counts["subscriptions_expired"] == 2
    finally:
        srv.stop()


def test_idle_tcp_strangers_never_keep_a_controllers_go_out():
    """Issue 27: idle unauthenticated TCP connections held every slot for a minute. Now strangers
    wait in their own pool (the oldest makes room), a GO gets in at once, and strangers are closed
    once their deadline to speak OSC has passed."""
    srv = OscServer(host="127.0.0.1", port=0, clock=FakeClock())
    srv.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", srv.tcp_port)) for _ in range(guard_mod.MAX_TCP_PENDING + 4)]
        time.sleep(0.2)
        c = socket.create_connection(("127.0.0.1", srv.tcp_port), timeout=3)
        c.sendall(slip(msg("/lectern/go")))
        time.sleep(0.4)
        assert [x.name for x in srv.drain()] == ["go"]
        time.sleep(guard_mod.TCP_PROVE_S + 1.0)
        assert srv.counts["tcp_unproven_closed"] + srv.counts["tcp_evicted"] >= len(idle)
        assert srv.tcp.count() == 1  # only the controller that spoke OSC holds a slot
        for s in idle + [c]:
            s.close()
    finally:
        srv.stop()


def test_type_tags_without_data_are_an_error_and_change_nothing(tmp_path):
    srv = OscServer(host="127.0.0.1", port=0, clock=FakeClock())
    srv.start()
    try:
        c = Client(srv.port)
        c.send(b"/lectern/temperature\x00\x00\x00\x00,f\x00\x00")
        got = replies(c.collect(0.5, until=lambda o: len(o) >= 1))
        assert got and got[0][:2] == ["/lectern/temperature", "error"] and srv.inbox.qsize() == 0
        c.send(msg("/lectern/seed", -5))
        assert replies(c.collect(0.5, until=lambda o: len(o) >= 1))[0][1] == "error"
    finally:
        srv.stop()


def test_model_by_name_only_releases_and_seed_replies(tmp_path):
    eng = Engine(setlist(tmp_path), session_seed=1)
    eng.start(0.0)
    said: list = []
    for i, (addr, args) in enumerate([("/lectern/model", ("/tmp",)), ("/lectern/model", ("/no/such/dir",)),
                                      ("/lectern/model", ("markov",)), ("/lectern/model/release", ()),
                                      ("/lectern/seed", (42,)), ("/lectern/prompt", ("The sea",)),
                                      ("/lectern/prompt/release", ())]):
        eng.step(1.0 + i, [Command(addr, args, source="osc", reply=lambda ok, d: said.append((ok, d)))]).answer()
    assert said[0][0] is False and said[1][0] is False
    assert said[0][1].replace("/tmp", "X") == said[1][1].replace("/no/such/dir", "X")  # tells nothing about disks
    assert said[2][0] is True and eng.model_override is None and said[3][0] is True
    assert said[4] == (True, "seed 42")
    assert eng.prompt_override is None and said[6][0] is True
    from performance.protocol.commands import interpret

    assert interpret("/lectern/prompt", ("",), 1) == ("prompt/release", ())
    assert interpret("/lectern/model", ("  ",), 1) == ("model/release", ())
