"""Ableton Link (--link): Lectern joins the musicians' Link session and follows its tempo.

One thread ("lectern-link") runs its own asyncio loop with an `aalink.Link` peer. While the session
has other peers it puts a `TempoState` on the engine's inbox — the beat heard at an engine time,
the tempo, the transport — at once when the tempo, the transport or the timeline changes and
REFRESH_S apart otherwise; when the last peer leaves, one `TempoGone`. The engine converts beats to times
(engine/tempo.py); nothing here waits on the frame loop or it on this. Link only shares a tempo (it
cannot steer the show), but it multicasts on every interface: it is off unless --link is given.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from typing import Any

from performance.controllers.base import Context, Controller, Unavailable
from performance.controllers.inbox import Inbox, put_latest
from performance.protocol.tempo import TempoGone, TempoState

log = logging.getLogger("lectern.link")

LOOK_S = 0.02  # how often the peer is looked at (a tempo change is also sent as soon as Link calls back)
MOVED_BEATS = 0.002  # a timeline this far (1 ms at 120 BPM) from the one sent is sent again at once
JOIN_WAIT_S = 1.0  # at start, how long the show waits for the session's peers (Link finds them in ~0.5 s)
REFRESH_S = 0.25  # the timeline is sent at least this often (the engine calls one silent for 1.5 s gone)


class LinkPeer:
    """The Link peer on its own thread: tempo, beat and transport as inbox messages."""

    def __init__(self, inbox: Any, engine_now: Any, bpm: float = 120.0, quantum: float = 4.0) -> None:
        self.inbox, self.engine_now, self.bpm, self.quantum = inbox, engine_now, bpm, quantum
        self.peers = 0
        self.tempo = bpm
        self.playing = False
        self.sent = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._heard = threading.Event()  # the first timeline went out
        self._error: str | None = None
        self._last: Any = None
        self._thread = threading.Thread(target=self._run, name="lectern-link", daemon=True)

    def start(self) -> None:
        """Join the session; raises Unavailable (one line) when Link cannot start here."""
        self._thread.start()
        self._ready.wait(5.0)
        if self._error:
            raise Unavailable(f"Link: {self._error}")
        # the show starts after this: a session found now paces the first poem in beats, not seconds
        self._heard.wait(JOIN_WAIT_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as e:  # the show goes on without Link
            self._error = self._error or str(e).strip() or type(e).__name__
            log.exception("Link: stopped")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        try:
            # lazy: aalink (Ableton Link's native library) loads only when --link asks for it
            import aalink

            link = aalink.Link(self.bpm)
            link.quantum = self.quantum
            link.start_stop_sync_enabled = True
            link.enabled = True
        except Exception as e:
            self._error = f"cannot join a Link session ({str(e).strip() or type(e).__name__})"
            return
        changed = asyncio.Event()
        link.set_tempo_callback(lambda _bpm: changed.set())
        link.set_start_stop_callback(lambda _playing: changed.set())
        self._ready.set()
        next_refresh = 0.0
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(changed.wait(), LOOK_S)
                except TimeoutError:
                    pass
                now, was = time.monotonic(), self.peers
                self.peers = link.num_peers
                if self.peers and (changed.is_set() or now >= next_refresh or not was or self._moved(link)):
                    self._send(self._sample(link))
                    next_refresh = now + REFRESH_S
                elif was and not self.peers:
                    self._send(TempoGone("link", "the last Link peer left"))
                    log.warning("Link: the last peer left")
                changed.clear()
        finally:
            link.enabled = False

    def _moved(self, link: Any) -> bool:
        """Has the session's timeline moved from the one last sent (Link aligns a peer that joins, and
        no callback says so)? Then the engine must hear it now, not at the next refresh."""
        last = self._last
        if not isinstance(last, TempoState):
            return True
        return abs(last.beat_at(self.engine_now()) - link.beat) > MOVED_BEATS

    def _sample(self, link: Any) -> TempoState:
        """The beat now and the engine time it was read at (read between two engine clock reads)."""
        e0 = self.engine_now()
        beat, tempo, playing = link.beat, link.tempo, link.playing
        at = (e0 + self.engine_now()) / 2
        self.tempo, self.playing = tempo, playing
        return TempoState("link", tempo, beat, at, playing=playing, peers=self.peers, quantum=self.quantum)

    def _send(self, msg: Any) -> None:
        old, self._last = self._last, msg
        if put_latest(self.inbox, msg, old) != "full":
            self.sent += 1
            self._heard.set()


class LinkControl(Controller):
    """--link: follow the tempo of an Ableton Link session (scenes paced in beats: docs/show-control.md)."""

    name = "link"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.peer: LinkPeer | None = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--link", action="store_true",
                            help="join the Ableton Link session on the local network: scenes paced in beats "
                                 "follow its tempo and start/stop")

    @classmethod
    def from_args(cls, args: argparse.Namespace, ctx: Context) -> LinkControl | None:
        return cls(ctx) if getattr(args, "link", False) else None

    def start(self, inbox: Inbox) -> None:
        beats = next((e.scene.pacing.beats for e in self.ctx.setlist.entries if e.scene.pacing.beats), None)
        clock = self.ctx.clock
        engine_now = clock.now if clock is not None else time.monotonic
        self.peer = LinkPeer(inbox, engine_now, bpm=beats.bpm if beats else 120.0,
                             quantum=float(beats.beats_per_bar) if beats else 4.0)
        self.peer.start()

    def status(self) -> dict[str, str]:
        p = self.peer
        if p is None:
            return {}
        if not p.peers:
            return {"link": "no peers (the last one left)" if p.sent else "no peers yet"}
        return {"link": f"{p.tempo:.1f} BPM · {p.peers} peer{'s' if p.peers != 1 else ''}"
                        + (" · playing" if p.playing else "")}

    def stop(self) -> None:
        if self.peer is not None:
            self.peer.stop()
