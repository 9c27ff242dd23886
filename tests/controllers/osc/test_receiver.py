"""OSC's whole packet path with no socket: datagram bytes into `OscReceiver.packet`, Commands out
on the inbox, and the replies it would send, encoded, from `outgoing()`. The same path a UDP
datagram or TCP frame takes in server.py; test_osc.py keeps only what needs a real socket (state
push timing, TCP framing, liblo, a port in use, the fuzzed engine)."""

from __future__ import annotations

import logging
import struct
import time

import pytest
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from performance.controllers.osc import guard as guard_mod
from performance.controllers.osc.help import COMMANDS
from performance.controllers.osc.receiver import MAX_BUNDLE_ELEMENTS, OscReceiver
from performance.controllers.osc.wire import build_message, parse_datagram
from performance.show.clock import FakeClock

PHONE = ("127.0.0.1", 50001)
GO = b"/lectern/go\x00,\x00\x00\x00"
PING = b"/lectern/ping\x00\x00\x00,\x00\x00\x00"
TEMPERATURE_9 = b"/lectern/temperature\x00\x00\x00\x00,f\x00\x00A\x10\x00\x00"


def msg(address: str, *args) -> bytes:
    return build_message(address, list(args))


def sent(rx: OscReceiver) -> list[tuple[tuple, str, list]]:
    """What the receiver would send now: (to, address, arguments), decoded from its bytes."""
    out = []
    for to, data, _ in rx.outgoing():
        [(_, m)] = parse_datagram(data)
        out.append((to, m.address, list(m.params)))
    return out


def replies(rx: OscReceiver, to: tuple | None = None) -> list[list]:
    return [args for dest, address, args in sent(rx) if address == "/lectern/reply" and to in (None, dest)]


def taken(rx: OscReceiver, answer: bool = True) -> list:
    """Play the engine: take every waiting Command (answering ok, as the engine does)."""
    out = []
    while not rx.inbox.empty():
        c = rx.inbox.get_nowait()
        if answer and c.reply:
            c.reply(True, "applied")
        out.append(c)
    return out


def bundle(when: float, *contents) -> bytes:
    b = OscBundleBuilder(when)
    for c in contents:
        b.add_content(c)
    return b.build().dgram


def go_message():
    return OscMessageBuilder(address="/lectern/go").build()


def test_the_byte_literals_are_what_python_osc_builds():
    assert msg("/lectern/go") == GO and msg("/lectern/ping") == PING and msg("/lectern/temperature", 9.0) == TEMPERATURE_9


def test_every_address_is_accepted_and_answered():
    rx = OscReceiver(scene_count=lambda: 4)
    sample = {"": (), "f": (0.5,), "i": (3,), "s": ("default",), "i|s": (2,), "b": (1,)}
    for a in COMMANDS:
        rx.packet(msg(f"/lectern/{a.name}", *sample[a.args]), PHONE, None)
    assert sorted(c.name for c in taken(rx)) == sorted(a.name for a in COMMANDS)
    got = replies(rx, PHONE)
    assert len(got) == len(COMMANDS) and all(r[1] == "ok" for r in got)


def test_ping_pongs_and_replies_go_to_the_source_and_the_subscribed_port():
    rx = OscReceiver()
    rx.packet(msg("/lectern/subscribe", 7000), PHONE, None)
    assert replies(rx, PHONE)[0][:2] == ["/lectern/subscribe", "ok"]
    rx.packet(PING, PHONE, None)
    pongs = {to for to, address, _ in sent(rx) if address == "/lectern/pong"}
    assert pongs == {PHONE, ("127.0.0.1", 7000)}
    rx.packet(TEMPERATURE_9, PHONE, None)
    assert [c.args for c in taken(rx)] == [(3.0,)]  # clamped to the table's bound
    got = sent(rx)
    assert {to for to, address, args in got if args[:2] == ["/lectern/temperature", "ok"]} == {PHONE, ("127.0.0.1", 7000)}


def test_our_own_outputs_echoed_back_are_ignored_without_a_reply():
    rx = OscReceiver()
    for d in (msg("/lectern/state/temperature", 1.0), msg("/lectern/reply", "x"), msg("/lectern/pong")):
        rx.packet(d, PHONE, None)
    assert sent(rx) == [] and rx.inbox.empty()


def test_the_allowlist_drops_and_counts():
    rx = OscReceiver(allow=["10.9.9.9"])
    rx.packet(PING, PHONE, None)
    assert sent(rx) == [] and rx.counts["dropped_not_allowed"] == 1 and rx.inbox.empty()


@pytest.mark.parametrize("allow,answered", [(["127.0.0.0/8"], True), (["localhost"], True),
                                            (["10.0.0.0/8", "999.1.1.1"], False)])
def test_the_allowlist_takes_networks_and_names_and_leaves_out_bad_entries(allow, answered, caplog):
    with caplog.at_level(logging.ERROR, logger="lectern.osc"):
        rx = OscReceiver(allow=allow)
    rx.packet(PING, PHONE, None)
    assert any(address == "/lectern/pong" for _, address, _ in sent(rx)) is answered
    assert ("'999.1.1.1' is not an IP address" in caplog.text) is ("999.1.1.1" in allow)


def test_a_passcode_is_needed_before_commands():
    rx = OscReceiver(passcode="s3cret")
    rx.packet(GO, PHONE, None)
    rx.packet(msg("/lectern/connect", "wrong"), PHONE, None)
    assert [r[1:] for r in replies(rx)] == [["error", "send /lectern/connect <passcode> first"],
                                           ["error", "wrong passcode"]]
    assert rx.inbox.empty()
    rx.packet(msg("/lectern/connect", "s3cret"), PHONE, None)
    rx.packet(GO, PHONE, None)
    assert [c.name for c in taken(rx)] == ["go"]


def test_a_passcode_gates_subscribe_and_locks_out_a_guesser():
    rx = OscReceiver(passcode="s3cret")
    rx.packet(msg("/lectern/subscribe", 7000), PHONE, None)
    rx.packet(PING, PHONE, None)  # liveness is open to all
    got = sent(rx)
    assert (PHONE, "/lectern/pong", []) in got
    assert [a for _, address, a in got if address == "/lectern/reply"][0] == [
        "/lectern/subscribe", "error", "send /lectern/connect <passcode> first"]
    for _ in range(5):
        rx.packet(msg("/lectern/connect", "guess"), PHONE, None)
    rx.packet(msg("/lectern/connect", "s3cret"), PHONE, None)  # right, but too late: locked out
    got = replies(rx)
    assert [r[2] for r in got[:5]] == ["wrong passcode"] * 5 and "too many wrong passcodes" in got[5][2]
    assert rx.counts["wrong_passcode"] == 5


def test_passcode_guesses_are_limited_in_total_from_any_number_of_addresses():
    rx = OscReceiver(passcode="right")
    for k in range(200):  # rotating addresses gains nothing: the budget is shared
        rx.packet(msg("/lectern/connect", f"guess{k}"), (f"127.0.{k // 200}.{10 + k % 200}", 1), None)
    assert rx.counts["wrong_passcode"] <= guard_mod.PASSCODE_PER_MINUTE and rx.counts["passcode_limited"] > 150
    for i in range(guard_mod.MAX_SENDERS + 50):  # a full sender table forgets no lockout
        rx.packet(PING, (f"10.{i // 250}.{i % 250}.9", 1), None)
    rx.outgoing()
    rx.packet(msg("/lectern/connect", "right"), ("127.0.0.10", 1), None)
    assert replies(rx)[0][1] == "error"


def test_the_session_token_gets_the_operator_in_while_a_guesser_sprays():
    rx = OscReceiver(passcode="right", token="t" * 32)
    for k in range(60):
        rx.packet(msg("/lectern/connect", f"guess{k}"), (f"127.0.0.{10 + k}", 1), None)
    rx.outgoing()
    operator = ("127.0.0.250", 1)
    rx.packet(msg("/lectern/connect", "t" * 32), operator, None)
    rx.packet(GO, operator, None)
    assert replies(rx, operator)[0][1:] == ["ok", "connected"] and [c.name for c in taken(rx)] == ["go"]


def test_the_rate_limit_drops_and_a_fader_keeps_one_waiting_value():
    rx = OscReceiver(rate_limit=50)
    for i in range(200):
        rx.packet(msg("/lectern/temperature", i / 100), PHONE, None)
    assert len(taken(rx, answer=False)) == 1  # one pending value per fader and sender: the newest let through
    assert rx.counts["dropped_rate"] > 0 and rx.counts["coalesced"] > 0


def test_coalescing_replaces_the_waiting_value_in_place_and_answers_the_old_one():
    rx = OscReceiver()
    for d in (GO, msg("/lectern/temperature", 1.0), msg("/lectern/back"), msg("/lectern/temperature", 2),
              msg("/lectern/volume", 0.5), msg("/lectern/temperature", 2.5)):
        rx.packet(d, PHONE, None)
    assert replies(rx) == [["/lectern/temperature", "ok", "superseded by a newer value"]] * 2
    cmds = taken(rx, answer=False)  # the engine had not taken anything: one temperature, in its first place
    assert [(c.name, c.args) for c in cmds] == [("go", ()), ("temperature", (2.5,)), ("back", ()), ("volume", (0.5,))]
    rx.packet(msg("/lectern/temperature", 0.25), PHONE, None)  # taken already: the next value queues afresh
    assert [(c.name, c.args) for c in taken(rx)] == [("temperature", (0.25,))] and rx.counts["coalesced"] == 2


def test_wrong_types_and_unknown_addresses_answer_error_with_the_reason():
    rx = OscReceiver()
    for d in (msg("/lectern/temperature", "hot"), msg("/lectern/seed", 1.5), msg("/lectern/nope"),
              msg("/lectern/volume"), msg("/lectern/temperature", float("nan"))):
        rx.packet(d, PHONE, None)
    got = replies(rx)
    assert [r[1] for r in got] == ["error"] * 5
    assert "must be a number" in got[0][2] and "whole number" in got[1][2] and "unknown address" in got[2][2]
    assert "needs an argument" in got[3][2] and "not a usable number" in got[4][2]
    assert (rx.counts["invalid"], rx.counts["unknown"], rx.counts["accepted"]) == (4, 1, 0) and rx.inbox.empty()


def test_type_tags_without_their_data_are_an_error_and_change_nothing():
    rx = OscReceiver()
    rx.packet(b"/lectern/temperature\x00\x00\x00\x00,f\x00\x00", PHONE, None)  # a float tag, no float
    assert rx.inbox.empty() and replies(rx)[0][:2] == ["/lectern/temperature", "error"]


MALFORMED = [
    b"", b"\x00", b"/lectern/go", b"/lectern/go\x00", b"/lectern/go\x00\x00\x00\x00,f\x00\x00",
    b"/lectern/temperature\x00\x00\x00\x00,f\x00\x00\x00\x00",  # truncated float
    b"\xff\xfe/bad utf8\x00\x00\x00,\x00\x00\x00", b"#bundle\x00\x00\x00", b"#bundle\x00" + b"\x00" * 8 + b"\x00\x00\x00\x40",
    b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -4), b"/lectern/go\x00,zzz\x00\x00\x00\x00", b"x" * 70000,
]


def nest(depth: int) -> bytes:
    inner = PING
    for _ in range(depth):
        inner = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", len(inner)) + inner
    return inner


def test_malformed_datagrams_are_counted_and_the_next_ping_is_answered(caplog):
    rx = OscReceiver(rate_limit=1e6)  # the parser is under test, not the limiter
    with caplog.at_level(logging.WARNING, logger="lectern.osc"):
        for i in range(400):
            rx.packet([*MALFORMED, nest(3), nest(50)][i % 14][:1000], PHONE, None)
        rx.outgoing()
        rx.packet(PING, PHONE, None)
    assert (PHONE, "/lectern/pong", []) in sent(rx) and rx.counts["malformed"] >= 250
    assert len([r for r in caplog.records if r.name == "lectern.osc"]) <= 8  # a few lines, not one per packet


def test_a_future_bundle_carries_a_due_time_on_the_engine_clock_nested_and_scaled():
    clock = FakeClock()
    clock.time_scale = 2.0  # the engine runs twice as fast: 10 s of real time is 20 s of engine time
    rx = OscReceiver(clock=clock)
    inner = OscBundleBuilder(time.time() + 20)
    inner.add_content(OscMessageBuilder(address="/lectern/back").build())
    rx.packet(bundle(time.time() + 10, go_message(), inner.build()), PHONE, None)
    rx.packet(bundle(time.time() - 5, OscMessageBuilder(address="/lectern/keep").build()), PHONE, None)
    due = {c.name: c.due for c in taken(rx, answer=False)}
    assert due["go"] == pytest.approx(20, abs=1) and due["back"] == pytest.approx(40, abs=1)
    assert due["keep"] is None  # already due: at once


def test_a_big_bundle_costs_one_token_per_message_and_the_far_future_is_refused():
    rx = OscReceiver(rate_limit=50, clock=FakeClock())
    rx.packet(bundle(time.time() + 10, *[go_message()] * 200), PHONE, None)  # more than its 50 tokens
    rx.packet(bundle(time.time() + 10, *[go_message()] * (MAX_BUNDLE_ELEMENTS + 1)), PHONE, None)
    rx.packet(bundle(time.time() + 86400, go_message()), PHONE, None)
    got = replies(rx)
    assert rx.inbox.empty() and rx.counts["dropped_rate"] == 1 and rx.counts["malformed"] == 1
    assert got and got[0][1] == "error" and "ahead" in got[0][2]


def test_no_subscription_to_the_receivers_own_port():
    rx = OscReceiver()
    rx.own_address = ("127.0.0.1", 9000)
    rx.packet(msg("/lectern/subscribe", 9000), PHONE, None)
    assert replies(rx)[0][1:] == ["error", "subscribe: that port is this server's own"]


def test_a_forged_subscribe_reflects_nothing_larger_than_itself():
    rx = OscReceiver(trust_loopback=False)  # as a remote, spoofable sender
    request = msg("/lectern/subscribe", 7000)
    rx.packet(request, PHONE, None)
    got = rx.outgoing()
    assert [(to, address) for to, _, address in got] == [(("127.0.0.1", 7000), "/lectern/token")]
    assert len(got[0][1]) <= len(request) and rx.counts["bytes_out"] <= rx.counts["bytes_in"]
    [(_, token_msg)] = parse_datagram(got[0][1])
    rx.packet(msg("/lectern/subscribe", 7000, token_msg.params[0]), ("127.0.0.1", 7000), None)  # the port's owner
    assert replies(rx)[0][:2] == ["/lectern/subscribe", "ok"] and rx.guard.subscriber_count() == 1


def test_over_tcp_only_go_and_panic_reach_the_show():
    rx = OscReceiver()
    conn = object()  # a TCP connection is only an identity here: replies are addressed to it
    rx.packet(GO, PHONE, conn)
    rx.packet(TEMPERATURE_9, PHONE, conn)
    assert [c.name for c in taken(rx)] == ["go"]
    got = sent(rx)
    assert all(to is conn for to, _, _ in got)
    answers = {args[0]: args[1:] for _, _, args in got}
    assert answers["/lectern/go"] == ["ok", "applied"] and "UDP" in answers["/lectern/temperature"][1]
