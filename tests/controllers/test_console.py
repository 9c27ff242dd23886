"""The TCP line console, driven as `nc` drives it: real sockets on loopback."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest

from performance.controllers import auth
from performance.controllers.base import Context
from performance.controllers.console import Console, parse_line
from performance.controllers.inbox import Inbox
from performance.protocol.commands import CommandError
from performance.protocol.snapshot import Snapshot


def _setlist():
    scenes = [SimpleNamespace(scene=SimpleNamespace(name=n)) for n in ("one", "brerin", "three")]
    return SimpleNamespace(entries=scenes, name="t", install=None)


@pytest.fixture
def console(tmp_path):
    ctx = Context(_setlist(), tmp_path, extras={"token": auth.new_token()})
    c = Console("127.0.0.1", 0, None, ctx.extras["token"], ctx)
    inbox = Inbox()
    c.start(inbox)
    yield c, inbox, tmp_path
    c.stop()


def _talk(port: int, lines: list[str], wait: float = 0.4) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        for line in lines:
            s.sendall((line + "\n").encode())
            time.sleep(0.05)
        time.sleep(wait)
        s.settimeout(0.3)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    return data.decode().splitlines()


def test_lines_become_validated_commands_after_auth(console):
    c, inbox, tmp_path = console
    token = (tmp_path / "console.token").read_text().strip()
    assert (tmp_path / "console.token").stat().st_mode & 0o077 == 0  # only its owner may read it
    got = _talk(c.port, ["go", f"auth {token}", "temperature 9", "scene brerin", "seed 42.5", "nonsense 1", "quit"])
    assert got[1] == "error send `auth TOKEN` first"
    assert got[2].startswith("ok authorised")
    assert "error /lectern/seed needs a whole number, got 42.5" in got
    assert any(line.startswith("error unknown address /lectern/nonsense") for line in got)
    cmds = inbox.drain()
    assert [(m.address, m.args, m.source) for m in cmds] == [("/lectern/temperature", (3.0,), "console"),
                                                              ("/lectern/scene", ("brerin",), "console")]
    cmds[0].reply(True, "temperature 3")  # the engine's answer comes back on the same connection


def test_a_browser_sent_here_by_a_web_page_is_closed_at_once(console):
    c, inbox, _ = console
    with socket.create_connection(("127.0.0.1", c.port), timeout=3) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\ngo\npanic\n")
        s.settimeout(2)
        data = b""
        while chunk := s.recv(4096):  # the server closes: recv returns b""
            data += chunk
    assert not [ln for ln in data.decode().splitlines() if ln.startswith("ok")] and inbox.drain() == []


def test_strangers_do_not_keep_the_technician_out(console):
    c, inbox, tmp_path = console
    token = (tmp_path / "console.token").read_text().strip()
    idle = [socket.create_connection(("127.0.0.1", c.port), timeout=3) for _ in range(12)]
    try:
        got = _talk(c.port, [f"auth {token}", "go"])
        assert got[1].startswith("ok authorised")
        assert [m.address for m in inbox.drain()] == ["/lectern/go"]
    finally:
        for s in idle:
            s.close()


def test_wrong_passcodes_share_the_budget_and_the_token_always_works(tmp_path):
    ctx = Context(_setlist(), tmp_path, extras={"token": auth.new_token()})
    budget = auth.GuessBudget(limit=2)
    c = Console("127.0.0.1", 0, "letmein", ctx.extras["token"], ctx)
    c.gate = auth.Gate(passcode="letmein", token=ctx.extras["token"], channel="console", budget=budget)
    c.start(Inbox())
    try:
        got = _talk(c.port, ["auth a", "auth b", "auth letmein"])
        assert got[1:3] == ["error wrong token or passcode"] * 2
        assert "too many wrong secrets" in got[3]  # spent: not even compared
        got = _talk(c.port, [f"auth {ctx.extras['token']}"])
        assert got[1].startswith("ok authorised")
    finally:
        c.stop()


def test_state_lines_follow_the_snapshot_when_watched(console):
    c, _, tmp_path = console
    token = (tmp_path / "console.token").read_text().strip()
    with socket.create_connection(("127.0.0.1", c.port), timeout=3) as s:
        s.sendall(f"auth {token}\nwatch\n".encode())
        time.sleep(0.3)
        c.on_state(Snapshot(scene=(2, "brerin"), poem=(4, 0), temperature=1.2, seed=9, model="words", state="playing"))
        time.sleep(0.5)
        s.settimeout(0.5)
        data = s.recv(65536).decode()
    assert "state scene 2 brerin · poem 4 · temperature 1.20 · seed 9 · words · playing" in data


def test_parse_line_reads_arguments_by_the_table():
    assert parse_line("temperature 1.5", 3).args == (1.5,)
    assert parse_line("/lectern/scene 2", 3).args == (2,)
    assert parse_line("prompt the grey sea", 3).args == ("the grey sea",)
    with pytest.raises(CommandError, match="not a number"):
        parse_line("volume loud", 3)
    with pytest.raises(CommandError, match="unknown address"):
        parse_line("quit", 3)  # the runtime's own: never from the network


def test_console_beyond_loopback_needs_a_passcode():
    args = SimpleNamespace(console=9100, console_host="0.0.0.0", osc_passcode=None, allow_open_network=False)
    assert "needs --osc-passcode" in Console.check_args(args, None)
    args.osc_passcode = "x"
    assert Console.check_args(args, None) is None
