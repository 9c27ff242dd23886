"""The audience page: a second page of the remote's server, without passcode or token, that does
one thing only — send a word (or pick one of the offered words) — and reaches nothing else.

Served (only when the setlist has an [audience] table) by RemoteServer, in the remote's own process:
  GET  /audience              the page (assets/remote/audience.html, .js, .css: no CDN)
  GET  /audience/offer        {"open": bool, "offer": [words], "max_chars": n}   (no state of the show)
  POST /audience/word         {"type": "word", "word": "..."} -> {"ok": bool, "detail": "one line"}

The POST must come from this server's own origin (Origin and Host checked as the remote's socket
is); its body is at most MAX_BODY bytes, a JSON object with exactly those two keys. A word is checked
here with the engine's own rule (show/audience_settings.py) and counted per address and in total on
time.monotonic, so a flood is refused before it crosses the pipe; what passes goes up as ("word", ...)
(remote_process.py), never as a command, and the engine checks it again and answers. The operator's
switch (/lectern/audience) reaches this side in the state's `audience` field. Every refusal is one
short JSON line; nothing here can raise into aiohttp (a bug is one logged line and a 500 line).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

from performance.controllers.inbox import put_latest
from performance.protocol.commands import PREFIX, Command
from performance.show.audience_settings import AudienceSettings, RateLimit, normal, refusal

log = logging.getLogger("lectern.remote")
FILES = {"/audience": ("audience.html", "text/html"), "/audience.js": ("audience.js", "application/javascript"),
         "/audience.css": ("audience.css", "text/css")}
MAX_BODY = 512
REPLY_TIMEOUT_S = 3.0


class AudienceDesk:
    """The audience's three routes on the remote's aiohttp app (its event loop thread only)."""

    def __init__(self, server: Any, settings: AudienceSettings) -> None:  # remote.RemoteServer
        self.server = server
        self.settings = settings
        self.open = settings.words  # until the first state says otherwise (the operator's switch)
        self.limit = RateLimit(settings.per_client_per_minute, settings.total_per_minute)
        self.counts = {"words": 0, "refused": 0, "origin_refused": 0}

    def routes(self, app: Any) -> None:
        """Add the page, its offer and its one POST to `app`."""
        for path in FILES:
            app.router.add_get(path, self.server._file)
        app.router.add_get("/audience/offer", self._offer)
        app.router.add_post("/audience/word", self._word)

    def retune(self, settings: AudienceSettings | None) -> None:
        """A reloaded setlist's [audience] (None: the table is gone, so words are closed)."""
        if settings is None:
            self.open = False
            return
        if (settings.per_client_per_minute, settings.total_per_minute) != (self.limit.per_client, self.limit.total):
            self.limit = RateLimit(settings.per_client_per_minute, settings.total_per_minute)
        self.settings = settings

    def follow(self, state: dict) -> None:
        """The show's state (any thread): only whether words are open is read."""
        if "audience" in state:
            self.open = state["audience"] == "on"

    def _json(self, status: int, body: dict) -> Any:
        from aiohttp import web  # lazy: the network libraries load only when this service actually starts

        resp = web.json_response(body, status=status, headers={"Cache-Control": "no-store",
                                                               "X-Content-Type-Options": "nosniff"})
        resp.force_close()
        return resp

    async def _offer(self, request: Any) -> Any:
        s = self.settings
        offer = random.sample(s.choices, s.offer) if s.offer else []
        return self._json(200, {"open": self.open, "offer": offer, "max_chars": s.max_chars})

    def _refuse(self, status: int, detail: str) -> Any:
        self.counts["refused"] += 1
        return self._json(status, {"ok": False, "detail": detail})

    async def _word(self, request: Any) -> Any:
        try:
            return await self._take(request)
        except Exception as e:  # noqa: BLE001 (one line, never a traceback to the audience)
            log.error("audience: word refused after an internal error (%s: %s)", type(e).__name__, e)
            return self._refuse(500, "not accepted (internal error, logged)")

    async def _take(self, request: Any) -> Any:
        if not self.server._origin_ok(request):
            self.counts["origin_refused"] += 1
            return self._refuse(403, "this page only answers its own page")
        if (request.content_length or 0) > MAX_BODY:
            return self._refuse(413, f"at most {MAX_BODY} bytes")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return self._refuse(413, f"at most {MAX_BODY} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return self._refuse(400, 'send {"type": "word", "word": "..."}')
        if not isinstance(data, dict) or set(data) != {"type", "word"} or data["type"] != "word":
            return self._refuse(400, "only a word is accepted here")
        if not self.open:
            return self._refuse(403, "audience words are off just now; thank you")
        s = self.settings
        why = refusal(data["word"], s.max_chars, s.blocklist, s.choices if s.offer else ())
        if why is not None:
            return self._refuse(400, why)
        why = self.limit.take(request.remote or "?", time.monotonic())
        if why is not None:
            return self._refuse(429, why)
        ok, detail = await self._forward(normal(data["word"]), request.remote or "?")
        self.counts["words" if ok else "refused"] += 1
        return self._json(200 if ok else 409, {"ok": ok, "detail": detail})

    async def _forward(self, word: str, ip: str) -> tuple[bool, str]:
        """Up to the engine (the pipe's "word", or the inbox in-process); its answer, or a timeout line."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def reply(ok: bool, detail: str) -> None:
            """Called by the engine's side (another thread): hand the answer to the event loop."""
            def settle() -> None:
                if not done.done():
                    done.set_result((ok, detail))
            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # the loop is closing
                pass

        inbox = self.server.inbox
        if hasattr(inbox, "put_word"):  # the remote's process: ("word", ...) up the pipe
            inbox.put_word(word, ip, reply)
        else:  # in-process (tests): the engine's own queue
            cmd = Command(f"{PREFIX}/audience/word", (word,), source="audience", sender=(ip, 0), reply=reply,
                          received=time.monotonic())
            if put_latest(inbox, cmd, None) == "full":
                return False, "busy: try again in a moment"
        try:
            return await asyncio.wait_for(done, REPLY_TIMEOUT_S)
        except TimeoutError:
            return False, "the show did not answer; try again in a moment"
