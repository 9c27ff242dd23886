"""The remote in its own process: commands reach the inbox and are answered, faders coalesce on
this side, passcode guesses in the child spend this process's budget, and a killed child comes back
on the same port with the same token. Real spawned process, real aiohttp client on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import threading
import time

import pytest

aiohttp = pytest.importorskip("aiohttp")

from performance.controllers import auth  # noqa: E402
from performance.controllers.remote_process import RemoteProcess  # noqa: E402


class Engine:
    """Takes Commands from the inbox and answers them, as the engine does (its own thread)."""

    def __init__(self, inbox: queue.Queue) -> None:
        self.inbox, self.got, self.stop = inbox, [], threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                c = self.inbox.get(timeout=0.02)
            except queue.Empty:
                continue
            self.got.append(c)
            c.reply(True, f"{c.name} applied")


async def talk(url: str, messages: list[dict], want: int, query: str = "") -> list[dict]:
    origin = url.rstrip("/")
    out: list[dict] = []
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{origin}/ws{query}", origin=origin) as ws:
        for m in messages:
            await ws.send_str(json.dumps(m))
        t0 = time.monotonic()
        while len([m for m in out if m["type"] in ("reply", "auth")]) < want and time.monotonic() - t0 < 10:
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            out.append(json.loads(msg.data))
    return out


@pytest.fixture
def remote():
    inbox: queue.Queue = queue.Queue()
    r = RemoteProcess(inbox, port=0, passcode="lantern", scene_names=lambda: ["one", "two"])
    r.start()
    engine = Engine(inbox)
    yield r, engine
    engine.stop.set()
    r.stop()


def test_a_command_from_the_page_reaches_the_inbox_and_its_reply_comes_back(remote):
    r, engine = remote
    got = asyncio.run(talk(r.url, [{"type": "command", "address": "/lectern/temperature", "args": [1.25], "id": 7}],
                           want=2, query=f"?token={r.token}"))
    reply = [m for m in got if m["type"] == "reply"][0]
    assert reply == {"type": "reply", "id": 7, "address": "/lectern/temperature", "ok": True,
                     "detail": "temperature applied"}
    [cmd] = engine.got
    assert (cmd.name, cmd.args, cmd.source) == ("temperature", (1.25,), "remote")


def test_state_reaches_the_page_after_authentication(remote):
    r, _ = remote
    r.publish_state({"scene": [2, "two"], "temperature": 0.9})
    got = asyncio.run(talk(r.url, [{"type": "connect", "passcode": "lantern"}], want=1))
    auth_msg = [m for m in got if m["type"] == "auth"][0]
    assert auth_msg["ok"] and auth_msg["scenes"] == ["one", "two"]


def test_guesses_in_the_remotes_process_spend_this_processs_budget(remote):
    r, _ = remote
    wrong = [{"type": "connect", "passcode": f"guess{i}"} for i in range(4)]
    asyncio.run(talk(r.url, wrong, want=4))
    budget = auth.shared_budget()
    assert budget.checked == 4  # compared over there, counted here: one budget for OSC and the remote


def test_a_killed_remote_comes_back_on_the_same_port_with_the_same_token(remote):
    r, engine = remote
    url, token = r.url, r.token
    os.kill(r._proc.pid, signal.SIGKILL)
    t0 = time.monotonic()
    while r.serving < 2 and time.monotonic() - t0 < 30:
        time.sleep(0.1)
    assert r.restarts == 1 and r.serving == 2 and r.url == url
    got = asyncio.run(talk(r.url, [{"type": "command", "address": "/lectern/go", "args": [], "id": 1}],
                           want=2, query=f"?token={token}"))
    assert [m["ok"] for m in got if m["type"] == "reply"] == [True] and engine.got[-1].name == "go"
