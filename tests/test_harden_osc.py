"""Hardening of the OSC path: future-dated floods, frame-gap stats (issue 20)."""

from __future__ import annotations

import time

from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from test_osc import Client, replies

from performance.control.command import Command
from performance.control.osc import OscServer
from performance.control.timed import MAX_DUE_PER_STEP, MAX_WAITING, MAX_WAITING_PER_SENDER, DueQueue
from performance.engine import Engine
from performance.play import FrameStats
from performance.show.clock import FakeClock
from performance.show.config import load_setlist


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
    eng.step(1.0, cmds)
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


def test_big_bundle_costs_one_token_per_message_and_far_future_is_refused():
    srv = OscServer(host="127.0.0.1", port=0, rate_limit=50, clock=FakeClock())
    srv.start()
    try:
        c = Client(srv.port)
        b = OscBundleBuilder(time.time() + 10)
        for _ in range(400):
            b.add_content(OscMessageBuilder(address="/lectern/go").build())
        c.send(b.build().dgram)
        far = OscBundleBuilder(time.time() + 86400)
        far.add_content(OscMessageBuilder(address="/lectern/go").build())
        c.send(far.build().dgram)
        got = replies(c.collect(0.5, until=lambda o: len(o) >= 1))
        time.sleep(0.1)
        assert srv.inbox.qsize() == 0 and srv.stats()["dropped_rate"] == 1
        assert got and got[0][1] == "error" and "ahead" in got[0][2]
    finally:
        srv.stop()


def test_stats_report_a_freeze_as_a_long_gap_and_missed_frames():
    s = FrameStats()
    t = 0.0
    for _ in range(10):
        s.frame(0.001, t)
        t += 1 / 60
    s.frame(0.001, t + 6.8)
    out = s.summary(10, 10, None)
    assert out["longest_gap_ms"] >= 6800 and out["frames_missed"] >= 400
