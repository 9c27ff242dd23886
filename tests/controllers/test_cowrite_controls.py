"""Co-writing picks from every controller go through the one validate(): keys 1-9 and H, OSC over
real UDP, the phone remote's WebSocket, and MIDI pads (through a real JACK server: test_cowrite_midi.py, in its own process)."""

from __future__ import annotations

import asyncio
import json
import queue
import time

import pygame
import pytest
from conftest import ROOT
from osc_client import Client, msg, replies

from performance.controllers.keyboard import command_for_key
from performance.controllers.mapping import load_mapping, mapping_from_dict
from performance.controllers.osc import OscServer
from performance.controllers.remote import RemoteServer
from performance.protocol.snapshot import Snapshot
from performance.show.clock import FakeClock
from performance.show.schema import ConfigError

PADS = ROOT / "assets" / "controllers" / "cowrite-pads.toml"


def test_number_keys_pick_while_words_are_offered_and_h_asks_for_one():
    offered = Snapshot(offer=("sea", "light", "stone"), offer_left=2.0)
    for key, n in ((pygame.K_1, 1), (pygame.K_3, 3), (pygame.K_KP2, 2)):
        cmd = command_for_key(key, offered)
        assert (cmd.address, cmd.args, cmd.source) == ("/lectern/choose", (n,), "key")
    assert command_for_key(pygame.K_3, Snapshot()) is None  # no offer: the digits do nothing
    hold = command_for_key(pygame.K_h, Snapshot())
    assert (hold.address, hold.args) == ("/lectern/choose", (0,))


def test_osc_choose_over_udp_is_validated_and_clamped():
    srv = OscServer(queue.Queue(), host="127.0.0.1", port=0, scene_count=lambda: 1, clock=FakeClock())
    srv.start()
    try:
        c = Client(srv.port)
        c.send(msg("/lectern/choose", 2))
        cmd = srv.inbox.get(timeout=2)
        assert (cmd.address, cmd.args, cmd.source) == ("/lectern/choose", (2,), "osc")
        c.send(msg("/lectern/choose", 40))
        assert srv.inbox.get(timeout=2).args == (9,)  # the table's bounds: the engine says 9 is not on stage
        c.send(msg("/lectern/choose", "sea"))
        got = replies(c.collect(1.0, until=lambda o: len(o) >= 1))
        assert got and got[0][:2] == ["/lectern/choose", "error"]
    finally:
        srv.stop()


def test_the_remote_shows_the_offer_and_its_buttons_send_choose():
    aiohttp = pytest.importorskip("aiohttp")
    inbox: queue.Queue = queue.Queue()
    srv = RemoteServer(inbox, host="127.0.0.1", port=0)
    srv.start()
    origin = f"http://127.0.0.1:{srv.port}"

    async def session() -> tuple[dict, list]:
        async with aiohttp.ClientSession() as s:
            url = f"ws://127.0.0.1:{srv.port}/ws?token={srv.token}"
            async with s.ws_connect(url, headers={"Origin": origin}) as ws:
                srv.publish_state(Snapshot(offer=("sea", "light"), offer_left=3.0).to_dict())
                state, seen = None, []
                deadline = time.monotonic() + 5
                while state is None and time.monotonic() < deadline:
                    m = json.loads((await ws.receive(timeout=5)).data)
                    seen.append(m["type"])
                    if m["type"] == "state" and m["state"].get("offer"):
                        state = m["state"]
                await ws.send_str(json.dumps({"type": "command", "address": "/lectern/choose", "args": [2], "id": 1}))
                await asyncio.sleep(0.3)
                return state, seen

    try:
        state, seen = asyncio.run(session())
        assert state is not None, seen
        assert state["offer"] == ["sea", "light"] and state["offer_left"] == 3.0
        cmd = inbox.get(timeout=2)
        assert (cmd.address, cmd.args, cmd.source) == ("/lectern/choose", (2,), "remote")
    finally:
        srv.stop()
    page = (ROOT / "assets" / "remote" / "remote.js").read_text()
    assert 'send("choose", [i + 1])' in page  # the page's buttons send exactly this


def test_choose_pads_map_to_their_candidate_and_bad_values_are_one_line():
    m = load_mapping(PADS)
    pads = {b.number: b.value for b in m.bindings if b.command == "choose"}
    assert pads == {36: 1, 37: 2, 38: 3, 39: 4, 40: 5, 41: 0}
    with pytest.raises(ConfigError) as e:
        mapping_from_dict({"name": "x", "bind": [{"note": 36, "command": "choose", "value": 12}]}, "pads.toml")
    assert "pads.toml" in str(e.value) and "value" in str(e.value) and "1..9" in str(e.value)
