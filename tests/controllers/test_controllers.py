"""Mapping files, soft takeover, the state publisher (with a real OSC server as one listener),
the remote's server side without a browser, and the controller options of `run.py play`."""

from __future__ import annotations

import asyncio
import queue
import socket
import time
from pathlib import Path

import pytest

from performance.controllers.mapping import (
    PICKUP_TOLERANCE,
    Binding,
    Pickup,
    load_mapping,
    mapping_from_dict,
    message,
    parse,
)
from performance.protocol.snapshot import Snapshot
from performance.runtime.publisher import StatePublisher
from performance.show.schema import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "assets" / "controllers").glob("*.toml"))


def test_shipped_mappings_load():
    assert {p.name for p in SHIPPED} >= {"generic-8x16.toml", "nanokontrol2.toml"}
    for p in SHIPPED:
        m = load_mapping(p)
        assert m.bindings, p
    nano = load_mapping(ROOT / "assets" / "controllers" / "nanokontrol2.toml")
    assert nano.find("cc", 1, 41).command == "go"
    assert nano.find("cc", 1, 0).command == "temperature"
    assert nano.find("cc", 2, 41) is None  # channel 1 only


@pytest.mark.parametrize("bind, needle", [
    ({"cc": 1, "command": "temprature"}, "key 'bind[0].command' = 'temprature': allowed"),
    ({"cc": 200, "command": "go"}, "key 'bind[0].cc' = 200: must be a whole number from 0 to 127"),
    ({"cc": 1, "note": 2, "command": "go"}, "'bind[0]' needs exactly one of cc"),
    ({"cc": 1, "command": "temperature", "range": [0, 9]}, "must be [low, high] within 0..3"),
    ({"cc": 1, "command": "go", "curve": "exp"}, "key 'bind[0].curve' = 'exp': only for continuous"),
    ({"cc": 1, "command": "scene"}, "a scene jump needs value"),
    ({"cc": 1, "command": "go", "colour": 3}, "key 'bind[0].colour' = 3: unknown key"),
])
def test_bad_mapping_is_one_line_naming_file_key_value(bind, needle):
    with pytest.raises(ConfigError) as e:
        mapping_from_dict({"bind": [bind]}, "my.toml")
    text = str(e.value)
    assert text.startswith("my.toml: ") and needle in text and "\n" not in text


def test_curves_and_their_inverse():
    lin = Binding("cc", 1, "temperature", range=(0.0, 2.0))
    exp = Binding("cc", 1, "temperature", range=(0.0, 2.0), curve="exp")
    log = Binding("cc", 1, "temperature", range=(0.0, 2.0), curve="log")
    assert (lin.to_value(0), lin.to_value(127)) == (0.0, 2.0)
    assert exp.to_value(64) == pytest.approx(2 * (64 / 127) ** 2, abs=1e-4)
    assert log.to_value(64) == pytest.approx(2 * (64 / 127) ** 0.5, abs=1e-4)
    for b in (lin, exp, log):
        for raw in (0, 1, 30, 64, 100, 127):
            assert b.to_raw(b.to_value(raw)) == raw
    assert Binding("cc", 1, "neuron", range=(0, 127)).to_value(64) == 64


def test_pickup_ignores_the_fader_until_it_reaches_the_shows_value():
    p = Pickup()
    assert p.accept(10)  # engaged from the start
    p.follow(80)  # another source set the show to 80
    assert not p.accept(12) and not p.accept(60)
    assert p.accept(79)  # within the tolerance
    assert p.accept(40)
    p.follow(40)  # our own value coming back keeps it engaged
    p.follow(90)  # another change: from below ...
    assert not p.accept(50)
    assert p.accept(100)  # ... crossing it takes over even between two messages
    assert PICKUP_TOLERANCE >= 1


def test_midi_bytes_round_trip_through_mido():
    assert parse(message("cc", 3, 7, 99)) == ("cc", 3, 7, 99)
    assert parse(message("note", 1, 60, 127)) == ("note", 1, 60, 127)
    assert parse([0x80, 60, 64]) == ("note", 1, 60, 0)
    assert parse([0xF8]) is None and parse([0xB0, 200, 1]) is None


def test_publisher_fans_out_to_osc_subscribers_and_other_listeners():
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    from performance.controllers.osc import OscServer

    pub = StatePublisher()
    osc = OscServer(queue.Queue(), port=0, tcp=False)
    osc.start()
    seen: list[dict] = []
    try:
        pub.subscribe(lambda snap: osc.publish_state(snap.to_dict()))  # as OscControl.on_state does
        pub.subscribe(seen.append)
        pub.subscribe(lambda s: 1 / 0)  # a broken listener is dropped, the others go on
        sub = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sub.bind(("127.0.0.1", 0))
        sub.settimeout(0.5)
        m = OscMessageBuilder("/lectern/subscribe")
        m.add_arg(sub.getsockname()[1])
        sub.sendto(m.build().dgram, ("127.0.0.1", osc.port))
        time.sleep(0.2)
        pub.publish(Snapshot(temperature=1.25, seed=7))
        pub.publish(Snapshot(temperature=1.5, seed=7))
        got = {}
        end = time.monotonic() + 3
        while (got.get("/lectern/state/temperature") != [1.5] or "/lectern/state/seed" not in got) and time.monotonic() < end:
            try:
                msg = OscMessage(sub.recvfrom(65536)[0])
                got[msg.address] = list(msg.params)
            except TimeoutError:
                pass
        assert got["/lectern/state/temperature"] == [1.5] and got["/lectern/state/seed"] == [7]
        assert [s.temperature for s in seen] == [1.25, 1.5]
        late: list[dict] = []
        pub.subscribe(late.append)  # a late listener gets the latest at once
        assert late == [Snapshot(temperature=1.5, seed=7)]
        assert pub.published == 2
    finally:
        osc.stop()


def test_remote_validates_like_osc_and_pushes_state():
    import aiohttp

    from performance.controllers.remote import RemoteServer

    inbox: queue.Queue = queue.Queue()
    srv = RemoteServer(inbox, port=0, passcode="pw", scene_names=lambda: ["a", "b"])
    srv.start()

    async def session() -> list[dict]:
        out = []
        async with aiohttp.ClientSession() as s, s.ws_connect(f"http://127.0.0.1:{srv.port}/ws", headers={"Origin": f"http://127.0.0.1:{srv.port}"}) as ws:
            out.append(await ws.receive_json())
            await ws.send_json({"type": "command", "address": "/lectern/go", "id": 1})
            out.append(await ws.receive_json())
            await ws.send_json({"type": "connect", "passcode": "pw"})
            out.append(await ws.receive_json())
            await ws.send_json({"type": "command", "address": "/lectern/temperature", "args": [9], "id": 2})
            await ws.send_json({"type": "command", "address": "/lectern/scene", "args": [5], "id": 3})
            await ws.send_json({"type": "command", "address": "/lectern/nope", "id": 4})
            out.append(await ws.receive_json())
            srv.publish_state({"temperature": 3.0})
            out.append(await ws.receive_json())
        return out

    try:
        hello, refused, auth, unknown, state = asyncio.run(session())
    finally:
        srv.stop()
    # nothing of the show leaves before the passcode (issue 27): the scene list comes after it
    assert hello == {"type": "hello", "passcode": True, "authorised": False, "token_refused": False}
    assert refused["ok"] is False and "passcode" in refused["detail"]
    assert auth["ok"] is True
    assert unknown["ok"] is False and "unknown address /lectern/nope" in unknown["detail"]
    assert state == {"type": "state", "state": {"temperature": 3.0}}
    cmds = [inbox.get_nowait() for _ in range(inbox.qsize())]
    assert [(c.address, c.args, c.source) for c in cmds] == [("/lectern/temperature", (3.0,), "remote"),
                                                             ("/lectern/scene", (2,), "remote")]
    assert srv.url == f"http://127.0.0.1:{srv.port}/"
    qr = srv.qr_text()
    assert len(qr.splitlines()) > 10 and any(ch in qr for ch in "█▀▄")


def test_play_refuses_a_bad_mapping_in_one_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.toml"
    bad.write_text('[[bind]]\ncc = 1\ncommand = "gogo"\n')
    r = subprocess.run([sys.executable, "run.py", "play", "setlists/safe.toml", "--headless", "--midi", "x",
                        "--midi-map", str(bad), "--duration", "1"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: key 'bind[0].command' = 'gogo': allowed")
