"""The browser remote: one page served by Lectern (aiohttp, its own thread and event loop).

GET / serves assets/remote/index.html (no build step, no CDN); /ws is a WebSocket on which the page
sends commands and receives the show's state. Like the OSC server, this only validates (the same
`interpret` as OSC), clamps and enqueues Commands (source "remote"); the engine applies them and
answers through each Command's reply, which comes back on the same socket. State comes from the
one publisher: every change is pushed to every page at once, and all of it once a second.

Protocol (JSON text frames):
  server → page  {"type": "hello", "scenes": [...], "passcode": bool}
  page → server  {"type": "connect", "passcode": "..."}   (when a passcode is set)
  server → page  {"type": "auth", "ok": bool, "detail": "..."}
  page → server  {"type": "command", "address": "/lectern/go", "args": [...], "id": n}
  server → page  {"type": "reply", "id": n, "address": "...", "ok": bool, "detail": "..."}
  server → page  {"type": "state", "state": {...}}
Loopback by default; --remote-host opens it to the LAN; --osc-passcode protects it too.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from performance.controllers.inbox import put_latest
from performance.protocol.commands import PREFIX, TABLE, Command, CommandError, interpret

log = logging.getLogger("lectern.remote")
ASSETS = Path(__file__).resolve().parents[2] / "assets" / "remote"
FILES = {"/": ("index.html", "text/html"), "/remote.js": ("remote.js", "application/javascript"),
         "/remote.css": ("remote.css", "text/css")}
FADERS = {a.name for a in TABLE.values() if a.fader}
PASSCODE_TRIES = 5
LOCKOUT_S = 30.0
MAX_CLIENTS = 32
MAX_FRAME = 4096


class RemoteError(OSError):
    """The remote could not be served (port in use, address not available)."""


class _Client:
    """One WebSocket (owned by the event loop)."""

    def __init__(self, ws: Any, ip: str) -> None:
        self.ws = ws
        self.ip = ip
        self.authorised = False
        self.out: deque = deque(maxlen=256)
        self.wake = asyncio.Event()
        self.sent_version = -1
        self.slots: dict[str, Command] = {}


class RemoteServer:
    """Serves the page and its WebSockets on `host`:`port` (port 0 = a free one).

    inbox: the engine's queue. passcode: required before any command (None = none).
    scene_names: the setlist's scene names, for the page's scene list. learn: where
    /lectern/learn goes (the MIDI controller), None = not available."""

    def __init__(self, inbox: queue.Queue, *, host: str = "127.0.0.1", port: int = 8080,
                 passcode: str | None = None, scene_names: Callable[[], list[str]] = list) -> None:
        self.inbox = inbox
        self.host = host
        self.passcode = passcode or None
        self.scene_names = scene_names
        self._want_port = port
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="lectern-remote", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._clients: set[_Client] = set()
        self._state_json = ""
        self._version = 0
        self._pending = False
        self._locked: dict[str, tuple[int, float]] = {}  # ip -> (wrong passcodes, locked until)
        self.counts = {"connections": 0, "accepted": 0, "refused": 0, "wrong_passcode": 0, "state_sent": 0}

    # ---- lifecycle (any thread) ----------------------------------------------------------------
    def start(self) -> None:
        """Start serving; returns once the port is bound, or raises RemoteError."""
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RemoteError(str(self._error)) from self._error
        if not self._ready.is_set():
            raise RemoteError("the remote's server did not start within 10 s")

    def stop(self) -> None:
        """Close every socket and stop the thread (within about a second)."""
        loop = self._loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        self._thread.join(3.0)

    @property
    def url(self) -> str:
        """The page's address as a phone should open it (the LAN address when open to the LAN)."""
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = lan_address()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def qr_text(self) -> str:
        """The URL as a QR code for a terminal (segno; two rows per text line)."""
        import io

        import segno

        buf = io.StringIO()
        segno.make(self.url, error="m").terminal(out=buf, compact=True, border=2)
        return buf.getvalue()

    def publish_state(self, state: dict) -> None:
        """Publisher listener: keep the snapshot and wake the event loop (O(1), never blocks)."""
        try:
            text = json.dumps(state, default=str)
        except (TypeError, ValueError):
            return
        if text == self._state_json:
            return
        self._state_json = text
        self._version += 1
        loop = self._loop
        if loop is not None and not self._pending:
            self._pending = True
            try:
                loop.call_soon_threadsafe(self._fan)
            except RuntimeError:  # the loop is closing
                pass

    # ---- the event loop ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 (the caller is told through start())
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=MAX_FRAME)
        for path in FILES:
            app.router.add_get(path, self._file)
        app.router.add_get("/ws", self._ws)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._want_port, reuse_address=True)
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise RemoteError(f"cannot listen on {self.host}:{self._want_port} ({e.strerror})") from None
        server = site._server
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        ticker = asyncio.create_task(self._tick())
        await self._stopping.wait()
        ticker.cancel()
        for c in list(self._clients):
            await c.ws.close()
        await runner.cleanup()

    async def _shutdown(self) -> None:
        self._stopping.set()

    async def _tick(self) -> None:
        while True:  # all of the state once a second, as OSC subscribers get it
            await asyncio.sleep(1.0)
            for c in self._clients:
                c.sent_version = -1
                c.wake.set()

    def _fan(self) -> None:
        self._pending = False
        for c in self._clients:
            c.wake.set()

    async def _file(self, request: Any) -> Any:
        from aiohttp import web

        name, ctype = FILES[request.path]
        try:
            body = (ASSETS / name).read_bytes()
        except OSError:
            return web.Response(status=404, text=f"{name} missing from assets/remote")
        return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "no-cache"})

    async def _ws(self, request: Any) -> Any:
        from aiohttp import WSMsgType, web

        if len(self._clients) >= MAX_CLIENTS:
            return web.Response(status=503, text="too many remotes connected")
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        ip = request.remote or "?"
        c = _Client(ws, ip)
        c.authorised = self.passcode is None
        self._clients.add(c)
        self.counts["connections"] += 1
        writer = asyncio.create_task(self._writer(c))
        self._push(c, {"type": "hello", "scenes": list(self.scene_names()), "passcode": self.passcode is not None})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                    if not isinstance(data, dict):
                        raise ValueError("not an object")
                except ValueError:
                    self._push(c, {"type": "reply", "id": None, "ok": False, "detail": "not a JSON object"})
                    continue
                self._message(c, data)
        finally:
            self._clients.discard(c)
            writer.cancel()
        return ws

    async def _writer(self, c: _Client) -> None:
        while not c.ws.closed:
            await c.wake.wait()
            c.wake.clear()
            try:
                while c.out:
                    await c.ws.send_str(c.out.popleft())
                if c.authorised and c.sent_version != self._version and self._state_json:
                    c.sent_version = self._version
                    await c.ws.send_str('{"type": "state", "state": ' + self._state_json + "}")
                    self.counts["state_sent"] += 1
            except (ConnectionError, RuntimeError):
                return

    def _push(self, c: _Client, obj: dict) -> None:
        """Queue a message for one page (event loop thread only)."""
        c.out.append(json.dumps(obj, default=str))
        c.wake.set()

    def _message(self, c: _Client, data: dict) -> None:
        kind = data.get("type")
        if kind == "connect":
            self._connect(c, data.get("passcode"))
            return
        if kind != "command":
            self._push(c, {"type": "reply", "id": data.get("id"), "ok": False,
                           "detail": f"unknown message type {kind!r} (command, connect)"})
            return
        rid, address = data.get("id"), data.get("address")
        args = data.get("args") or []
        if not c.authorised:
            self.counts["refused"] += 1
            self._push(c, {"type": "reply", "id": rid, "address": address, "ok": False,
                           "detail": "enter the passcode first"})
            return
        if not isinstance(address, str) or not isinstance(args, list):
            self._push(c, {"type": "reply", "id": rid, "ok": False, "detail": "address must be text, args a list"})
            return
        try:
            name, clean = interpret(address, tuple(args), len(self.scene_names()))
        except CommandError as e:
            self.counts["refused"] += 1
            self._push(c, {"type": "reply", "id": rid, "address": address, "ok": False, "detail": str(e)})
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
            self._push(c, {"type": "reply", "id": rid, "address": address, "ok": False,
                           "detail": "busy: too many commands waiting"})
            return
        if got == "replaced":
            old = c.slots.get(name)
            if old is not None and old.reply:
                old.reply(True, "superseded by a newer value")
        self.counts["accepted"] += 1
        if name in FADERS:
            c.slots[name] = cmd

    def _connect(self, c: _Client, given: Any) -> None:
        if self.passcode is None:
            c.authorised = True
            self._push(c, {"type": "auth", "ok": True, "detail": "connected (no passcode needed)"})
            return
        now = time.monotonic()
        wrong, until = self._locked.get(c.ip, (0, 0.0))
        if now < until:
            self._push(c, {"type": "auth", "ok": False,
                           "detail": f"too many wrong passcodes; try again in {until - now:.0f} s"})
            return
        text = given if isinstance(given, str) else ""
        if hmac.compare_digest(text.encode("utf-8", "replace"), self.passcode.encode("utf-8")):
            c.authorised = True
            self._locked.pop(c.ip, None)
            self._push(c, {"type": "auth", "ok": True, "detail": "connected"})
            c.sent_version = -1
            return
        self.counts["wrong_passcode"] += 1
        wrong += 1
        self._locked[c.ip] = (0, now + LOCKOUT_S) if wrong >= PASSCODE_TRIES else (wrong, 0.0)
        log.warning("remote: wrong passcode from %s", c.ip)
        self._push(c, {"type": "auth", "ok": False, "detail": "wrong passcode"})


def lan_address() -> str:
    """This machine's address on the LAN (the one a UDP socket towards the outside would use)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent, only the route is looked up
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()
