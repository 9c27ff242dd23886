"""What a phone's page may say to the remote, and how it is answered: passcode or token first,
then commands through the one validator (performance.protocol.commands), each answered by one
reply line naming the field that was wrong. Nothing a page sends can raise: deep JSON, huge
numbers, NaN, wrong types and long strings are all refused in one line.

`PageMessages` is the message half of RemoteServer (remote.py holds the sockets and the
connections); its methods run on the remote's event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from typing import Any

from performance.controllers import auth
from performance.controllers.inbox import put_latest
from performance.protocol.commands import (
    PREFIX,
    TABLE,
    Command,
    CommandError,
    UnknownCommand,
    interpret,
    network_commands,
)

MAX_CLIENTS = 32  # authenticated pages
MAX_DEPTH = 8  # JSON nesting
MAX_ARGS = 8
MAX_TEXT = 2000
MAX_ID = 64
FADERS = {a.name for a in TABLE.values() if a.fader}
# the page's controls come from the one command table: which exist, their ranges and help text
COMMANDS_FOR_PAGE = [{"name": c.name, "args": c.args, "range": c.range, "does": c.does,
                      **({"min": c.bounds[0], "max": c.bounds[1]} if c.bounds is not None and c.fader else {})}
                     for c in network_commands()]


def _too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether brackets nest deeper than `limit` (outside strings): checked before json.loads."""
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class _Client:
    """One WebSocket (owned by the event loop)."""

    def __init__(self, ws: Any, ip: str, conn: Any) -> None:  # remote._Conn: its TCP connection
        self.ws = ws
        self.ip = ip
        self.conn = conn
        self.authorised = False
        self.opened = time.monotonic()
        self.messages = 0
        self.out: deque = deque(maxlen=256)
        self.wake = asyncio.Event()
        self.sent_version = -1
        self.slots: dict[str, Command] = {}


class PageMessages:
    """Handling of one page's messages (mixed into RemoteServer, which owns the state used here)."""

    def _push(self, c: _Client, obj: dict) -> None:
        """Queue a message for one page (event loop thread only)."""
        c.out.append(json.dumps(obj, default=str))
        c.wake.set()

    def _reply(self, c: _Client, rid: Any, address: Any, ok: bool, detail: str) -> None:
        msg = {"type": "reply", "id": rid, "ok": ok, "detail": detail}
        if isinstance(address, str):
            msg["address"] = address
        self._push(c, msg)

    def _authorise(self, c: _Client, detail: str) -> None:
        c.authorised = True
        if c.conn is not None:
            c.conn.state = "authed"
        c.sent_version = -1
        self._push(c, {"type": "auth", "ok": True, "detail": detail, "scenes": list(self.scene_names()),
                       "token": self.token, "commands": COMMANDS_FOR_PAGE})

    # ---- messages ------------------------------------------------------------------------------
    def _text(self, c: _Client, text: str) -> None:
        if _too_deep(text):
            self._reply(c, None, None, False, f"message: nested deeper than {MAX_DEPTH} levels")
            return
        try:
            data = json.loads(text, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            self._reply(c, None, None, False, "message: not JSON (a JSON object is expected)")
            return
        if not isinstance(data, dict):
            self._reply(c, None, None, False, f"message: a JSON object is expected, got {type(data).__name__}")
            return
        rid = data.get("id")
        if rid is not None and not (
                (isinstance(rid, int) and not isinstance(rid, bool) and abs(rid) <= 2**53)
                or (isinstance(rid, str) and len(rid) <= MAX_ID)):
            self._reply(c, None, None, False, f"id: a whole number or a text of at most {MAX_ID} characters")
            return
        kind = data.get("type")
        if kind == "connect":
            self._connect(c, data)
            return
        if kind != "command":
            shown = repr(kind)[:40] if isinstance(kind, str) else type(kind).__name__
            self._reply(c, rid, None, False, f"type: unknown message type {shown} (command, connect)")
            return
        if not c.authorised:
            self.counts["refused"] += 1
            self._reply(c, rid, None, False, "auth: enter the passcode first")
            return
        self._command(c, rid, data)

    def _command(self, c: _Client, rid: Any, data: dict) -> None:
        address, args = data.get("address"), data.get("args", [])
        if not isinstance(address, str) or not address or len(address) > 128:
            self._reply(c, rid, None, False, "address: a text like /lectern/go (at most 128 characters)")
            return
        if args is None:
            args = []
        if not isinstance(args, list) or len(args) > MAX_ARGS:
            self._reply(c, rid, address, False, f"args: a list of at most {MAX_ARGS} values")
            return
        for i, a in enumerate(args):
            if isinstance(a, str):
                if len(a) > MAX_TEXT:
                    self._reply(c, rid, address, False, f"args[{i}]: a text of at most {MAX_TEXT} characters")
                    return
            elif isinstance(a, float) and not math.isfinite(a):
                self._reply(c, rid, address, False, f"args[{i}]: not a finite number")
                return
            elif not isinstance(a, bool | int | float):
                self._reply(c, rid, address, False,
                            f"args[{i}]: a number, true/false or a text, got {type(a).__name__}")
                return
        try:
            name, clean = interpret(address, tuple(args), len(self.scene_names()))
        except UnknownCommand as e:
            self.counts["refused"] += 1
            self._reply(c, rid, address, False, f"address: {e}")
            return
        except CommandError as e:
            self.counts["refused"] += 1
            self._reply(c, rid, address, False, f"args: {e}")
            return
        loop = self._loop

        def reply(ok: bool, detail: str) -> None:
            """Called by the engine (its thread): hand the answer to the event loop."""
            msg = {"type": "reply", "id": rid, "address": f"{PREFIX}/{name}", "ok": ok, "detail": detail}
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._push, c, msg)
                except RuntimeError:
                    pass

        cmd = Command(f"{PREFIX}/{name}", clean, source="remote", sender=(c.ip, 0), reply=reply,
                      received=time.monotonic())
        got = put_latest(self.inbox, cmd, c.slots.get(name) if name in FADERS else None)
        if got == "full":
            self._reply(c, rid, address, False, "busy: too many commands waiting")
            return
        if got == "replaced":
            old = c.slots.get(name)
            if old is not None and old.reply:
                old.reply(True, "superseded by a newer value")
        self.counts["accepted"] += 1
        if name in FADERS:
            c.slots[name] = cmd

    def _connect(self, c: _Client, data: dict) -> None:
        given = data.get("passcode", data.get("token"))
        if not isinstance(given, str) or not given or len(given) > auth.MAX_SECRET:
            self._push(c, {"type": "auth", "ok": False,
                           "detail": f"passcode: a text of 1..{auth.MAX_SECRET} characters"})
            return
        if c.authorised:
            self._push(c, {"type": "auth", "ok": True, "detail": "already connected"})
            return
        if self.gate.check_token(given):  # free: far too long to guess
            self._admit_authorised(c, "connected")
            return
        if self.passcode is None:
            self._push(c, {"type": "auth", "ok": False,
                           "detail": "token: wrong; open the address the show printed (or scan its QR code)"})
            return
        verdict = self.gate.check_passcode(given, c.ip)
        if verdict is auth.Verdict.OK:
            self._admit_authorised(c, "connected")
        elif verdict is auth.Verdict.BUSY:
            self.counts["passcode_busy"] += 1
            self._push(c, {"type": "auth", "ok": False,
                           "detail": f"passcode: too many wrong guesses on this show; try again in "
                                     f"{self.gate.budget.retry_in():.0f} s, or open the address with its token"})
        else:
            self.counts["wrong_passcode"] += 1
            self._push(c, {"type": "auth", "ok": False, "detail": "wrong passcode"})

    def _admit_authorised(self, c: _Client, detail: str) -> None:
        if sum(1 for x in self._clients if x.authorised) >= MAX_CLIENTS:
            self._push(c, {"type": "auth", "ok": False, "detail": "too many remotes connected"})
            return
        self._authorise(c, detail)
