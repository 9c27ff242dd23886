"""OSC bytes and gatekeeping without a socket: byte literals into wire.py and guard.py."""

from __future__ import annotations

import pytest

from performance.controllers.osc.guard import LOCKOUT_S, PASSCODE_TRIES, Guard, TcpAdmission
from performance.controllers.osc.wire import (
    address_of,
    build_message,
    bundle_elements,
    check_arguments,
    parse_datagram,
    slip_decode,
    slip_encode,
)

GO = b"/lectern/go\x00,\x00\x00\x00"
TEMPERATURE_1_5 = b"/lectern/temperature\x00\x00\x00\x00,f\x00\x00?\xc0\x00\x00"


def test_a_message_parses_to_its_address_and_arguments():
    [(tag, msg)] = parse_datagram(TEMPERATURE_1_5)
    assert tag is None and msg.address == "/lectern/temperature" and list(msg.params) == [1.5]
    assert build_message("/lectern/temperature", [1.5]) == TEMPERATURE_1_5
    assert build_message("/lectern/go", []) == GO


@pytest.mark.parametrize("data,why", [
    (b"/lectern/temperature\x00\x00\x00\x00,f\x00\x00", "packet too short"),  # a float tag with no float
    (TEMPERATURE_1_5 + b"\x00\x00\x00\x00", "bytes after the arguments"),
    (b"/lectern/go\x00,x\x00\x00", "unknown type tag"),
    (b"/lectern/go", "past the end"),
])
def test_a_packet_that_is_not_what_its_tags_say_is_refused(data, why):
    with pytest.raises(ValueError, match=why):
        check_arguments(data)


def test_bundles_are_counted_from_their_sizes_before_parsing():
    inner = len(GO).to_bytes(4, "big") + GO
    bundle = b"#bundle\x00" + b"\x00" * 8 + inner * 3
    assert bundle_elements(bundle) == 3 and bundle_elements(GO) == 1
    assert [m.address for _, m in parse_datagram(bundle)] == ["/lectern/go"] * 3
    assert address_of(b"/lectern/seed\x00\x00\x00,i\x00\x00") == "/lectern/seed"


def test_slip_round_trips_the_bytes_it_must_escape():
    packet = bytes([0xC0, 0xDB, 1, 2])
    framed = slip_encode(packet)
    assert framed[0] == framed[-1] == 0xC0 and 0xC0 not in framed[1:-1]
    assert slip_decode(framed[1:-1]) == packet
    with pytest.raises(ValueError):
        slip_decode(bytes([0xDB, 0x01]))


def test_the_bucket_the_allowlist_and_the_credit():
    g = Guard(allow=["127.0.0.0/8"], passcode=None, token=None, rate_limit=3, trust_loopback=False)
    assert g.allowed("127.0.0.9") and not g.allowed("10.0.0.1")
    s = g.sender("127.0.0.9")
    assert [g.take_token(s, 20, tcp=False) for _ in range(4)] == [True, True, True, False]
    # every datagram it sent (the refused one too) is credit: never more bytes back than it sent
    assert g.may_send(s, 80, tcp=False) and not g.may_send(s, 1, tcp=False)
    assert g.may_send(s, 10_000, tcp=True)  # a TCP peer's address is real


def test_wrong_passcodes_lock_a_sender_out_and_the_token_always_opens():
    g = Guard(allow=None, passcode="right", token="t" * 32, rate_limit=100, trust_loopback=True)
    s = g.sender("127.0.0.5")
    for _ in range(PASSCODE_TRIES):
        assert g.connect("nope", s, "127.0.0.5") == (False, "wrong passcode")
    ok, detail = g.connect("right", s, "127.0.0.5")
    assert ok is False and "too many wrong passcodes" in detail and f"{LOCKOUT_S:.0f}" in detail
    assert g.connect("t" * 32, s, "127.0.0.5") == (True, "connected") and not g.needs_connect(s)


def test_tcp_strangers_make_room_and_proven_controllers_keep_their_slots():
    adm = TcpAdmission()
    conns = [object() for _ in range(3)]
    assert adm.admit(conns[0], "127.0.0.2") is None
    assert adm.admit(conns[1], "127.0.0.2") is None
    assert adm.admit(conns[2], "127.0.0.2") is conns[0]  # two strangers per address: the oldest goes
    assert adm.prove(conns[2]) and adm.is_proven(conns[2]) and not adm.overdue(conns[2])
    assert adm.still_held(conns[1]) and not adm.still_held(conns[0])
