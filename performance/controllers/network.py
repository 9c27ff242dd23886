"""The network controllers as the runtime sees them: OSC (UDP/TCP, Zeroconf), MIDI and the phone
remote, each an implementation of `Controller` around its own server (osc.py, midi.py, remote.py).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from performance.cli_types import passcode as _passcode
from performance.cli_types import ranged as _ranged
from performance.controllers.base import Context, Controller, Unavailable
from performance.controllers.inbox import Inbox
from performance.protocol.commands import Command
from performance.protocol.snapshot import Snapshot

log = logging.getLogger("lectern.controllers")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAP = ROOT / "assets" / "controllers" / "generic-8x16.toml"


class OscControl(Controller):
    """OSC on --osc-port (UDP, and TCP with SLIP for GO/panic), announced over Zeroconf beyond loopback."""

    name = "osc"

    def __init__(self, args: argparse.Namespace, ctx: Context) -> None:
        self.args, self.ctx = args, ctx
        self.server = None
        self._setlist = ctx.setlist  # the scenes the pages were sent at connect
        self._scenes: list[str] | None = None  # after a reload: the new list, in every state from then on
        self.advertiser = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        p = parser
        g = p.add_argument_group("OSC")
        g.add_argument("--osc-host", default="127.0.0.1", metavar="H", help="address to listen on (default loopback)")
        g.add_argument("--osc-port", type=_ranged(int, 0, 65535), default=9000, metavar="P", help="UDP port (default 9000; 0 = off)")
        g.add_argument("--osc-allow", metavar="IP[,IP]", help="only these sender addresses may steer")
        g.add_argument("--osc-passcode", type=_passcode, metavar="CODE", help="senders must /lectern/connect CODE first")
        g.add_argument("--no-advertise", action="store_true",
                       help="do not announce OSC over Zeroconf/Bonjour (_osc._udp; only done beyond loopback)")
        g.add_argument("--osc-rate", type=_ranged(float, 1, 1e7), default=200.0, metavar="N",
                       help="messages per second one sender may send (default 200; more are dropped and counted)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, ctx: Context) -> OscControl | None:
        return cls(args, ctx) if args.osc_port else None

    def start(self, inbox: Inbox) -> None:
        # lazy: `run.py --help` imports this module; what the command needs loads when it runs
        from performance.controllers.advertise import Advertiser, should_advertise
        from performance.controllers.osc import OscServer

        a = self.args
        allow = [x.strip() for x in a.osc_allow.split(",")] if a.osc_allow else None
        try:
            self.server = OscServer(inbox, host=a.osc_host, port=a.osc_port, allow=allow, passcode=a.osc_passcode,
                                    scene_count=self.ctx.scene_count, clock=self.ctx.clock, rate_limit=a.osc_rate,
                                    token=self.ctx.extras.get("token"))
            self.server.start()
        except OSError as e:
            self.server = None
            raise Unavailable(f"OSC: cannot listen on {a.osc_host}:{a.osc_port} ({e.strerror}); continuing "
                              "without OSC (choose another --osc-port)") from None
        if should_advertise(a.osc_host, a.no_advertise):
            self.advertiser = Advertiser(f"Lectern {self.ctx.setlist.name} on {os.uname().nodename}", self.server.port,
                                         a.osc_host, {"prefix": "/lectern", "setlist": self.ctx.setlist.name})
            self.advertiser.start()

    def on_state(self, snap: Snapshot) -> None:
        if self.server is not None:
            self.server.publish_state(snap.to_dict())

    def stop(self) -> None:
        for part in (self.advertiser, self.server):
            if part is not None:
                part.stop()


class MidiControl(Controller):
    """A MIDI controller (--midi PORT or the setlist's midi), its mapping file, feedback and learn."""

    name = "midi"

    def __init__(self, port: str, map_file: Path, ctx: Context) -> None:
        self.port, self.map_file, self.ctx = port, map_file, ctx
        self.midi = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("MIDI")
        g.add_argument("--midi", metavar="PORT", help="MIDI controller: part of its port name (`run.py midi` lists them)")
        g.add_argument("--midi-map", type=Path, metavar="FILE",
                       help="MIDI mapping file (default: the setlist's midi_map, else assets/controllers/generic-8x16.toml)")

    @staticmethod
    def _map_file(args: argparse.Namespace, setlist) -> Path:
        return getattr(args, "midi_map", None) or getattr(setlist, "midi_map", None) or DEFAULT_MAP

    @classmethod
    def check_args(cls, args: argparse.Namespace, setlist) -> str | None:
        # lazy: `run.py --help` imports this module; what the command needs loads when it runs
        from performance.controllers.mapping import load_mapping
        from performance.show.schema import ConfigError

        if getattr(args, "midi", None) or getattr(setlist, "midi", None):
            try:
                load_mapping(cls._map_file(args, setlist))
            except ConfigError as e:
                return str(e)
        return None

    @classmethod
    def from_args(cls, args: argparse.Namespace, ctx: Context) -> MidiControl | None:
        port = getattr(args, "midi", None) or getattr(ctx.setlist, "midi", None)
        return cls(port, cls._map_file(args, ctx.setlist), ctx) if port else None

    def start(self, inbox: Inbox) -> None:
        # lazy: `run.py --help` imports this module; what the command needs loads when it runs
        from performance.controllers.mapping import load_mapping
        from performance.controllers.midi import MidiController, learned_path_for
        from performance.controllers.midi_clock import engine_time_from

        self.midi = MidiController(inbox, self.port, load_mapping(self.map_file),
                                   learned_path=learned_path_for(self.ctx.session_dir), scene_count=self.ctx.scene_count,
                                   engine_time=engine_time_from(self.ctx.clock))
        self.midi.start()

    def on_state(self, snap: Snapshot) -> None:
        if self.midi is not None:
            self.midi.publish_state(snap.to_dict())

    def answer(self, cmd: Command) -> tuple[bool, str] | None:
        if cmd.name != "learn" or self.midi is None:
            return None
        return self.midi.learn(str(cmd.args[0]))

    def observe(self, cmd: Command) -> None:
        if self.midi is not None:
            self.midi.observe(cmd)

    def status(self) -> dict[str, str]:
        if self.midi is None:
            return {}
        return {"learn": self.midi.learn_state, "midi": self.midi.in_name or f"waiting for {self.midi.match!r}"}

    def stop(self) -> None:
        if self.midi is not None:
            self.midi.stop()


class RemoteControl(Controller):
    """The phone remote (--remote PORT): a page on the performer's phone, reached with its token URL."""

    name = "remote"

    def __init__(self, args: argparse.Namespace, ctx: Context) -> None:
        self.args, self.ctx = args, ctx
        self.server = None
        self._setlist = ctx.setlist  # the scenes the pages were sent at connect
        self._scenes: list[str] | None = None  # after a reload: the new list, in every state from then on

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("phone remote")
        g.add_argument("--remote", type=int, metavar="PORT", help="serve the browser remote on this port (off by default)")
        g.add_argument("--remote-host", default="127.0.0.1", metavar="H",
                       help="address the remote listens on (default loopback; 0.0.0.0 = the LAN)")

    @classmethod
    def check_args(cls, args: argparse.Namespace, setlist) -> str | None:
        if getattr(args, "remote", None) is not None and not 0 <= args.remote <= 65535:
            return f"--remote {args.remote}: a TCP port 0..65535 (0 = any free one)"
        return None

    @classmethod
    def from_args(cls, args: argparse.Namespace, ctx: Context) -> RemoteControl | None:
        return cls(args, ctx) if getattr(args, "remote", None) is not None else None

    def start(self, inbox: Inbox) -> None:
        # lazy: `run.py --help` imports this module; what the command needs loads when it runs
        from performance.controllers.remote import RemoteError
        from performance.controllers.remote_process import RemoteProcess

        try:  # its own process: a flood at the remote never holds the frame loop (remote_process.py)
            self.server = RemoteProcess(inbox, host=self.args.remote_host, port=self.args.remote,
                                       passcode=self.args.osc_passcode, scene_names=self.ctx.scene_names,
                                       token=self.ctx.extras.get("token"), audience=self._audience())
            self.server.start()
        except (RemoteError, OSError) as e:
            self.server = None
            raise Unavailable(f"remote: {e}; continuing without the remote (choose another --remote port)") from None
        # the token's URL: logged even with --quiet, the one way in without a passcode
        log.warning("remote: open %s (its token lets a phone steer the show: keep it private)", self.server.token_url)
        if self.server.audience_url:
            log.warning("audience: words from the audience at %s (no token: it sends a word, nothing else)",
                        self.server.audience_url)

    def _audience(self) -> dict | None:
        """The setlist's [audience] for the page's server (None: no audience page)."""
        a = getattr(self.ctx.setlist, "audience", None)
        return a.to_dict() if a is not None else None

    def on_state(self, snap: Snapshot) -> None:
        if self.server is not None:
            state = snap.to_dict()
            if self.ctx.setlist is not self._setlist:  # a reload changed the scenes (the router sets ctx.setlist)
                self._setlist, self._scenes = self.ctx.setlist, self.ctx.scene_names()
                self.server.set_audience(self._audience())  # the page's rule follows an edited [audience]
            if self._scenes is not None:
                state["scenes"] = self._scenes
            self.server.publish_state(state)

    def status(self) -> dict[str, str]:
        # the operator's own screens show the way in with its token; the state that leaves by the
        # network (OSC, MIDI, the page itself) carries only the address
        if self.server is None:
            return {}
        audience = self.server.audience_url  # no token in it: the audience page is public by design
        return {"remote": self.server.url, **({"audience_page": audience} if audience else {})}

    def private_status(self) -> dict[str, str]:
        if self.server is None:
            return {}
        audience = self.server.audience_url
        return {"remote link": self.server.token_url, **({"audience page": audience} if audience else {})}

    def announce(self) -> str:
        if self.server is None:
            return ""
        try:
            qr = self.server.qr_text()
        except Exception as e:  # no QR is no reason to stop
            qr = f"(no QR code: {e})\n"
        text = f"remote: open {self.server.token_url} on a phone, or scan:\n{qr}"
        if self.server.audience_url:  # the gallery's QR code: words only, no token
            from performance.controllers.remote import qr_for  # lazy: segno, only when announced

            try:
                aqr = qr_for(self.server.audience_url)
            except Exception as e:  # noqa: BLE001 (no QR is no reason to stop)
                aqr = f"(no QR code: {e})\n"
            text += f"audience: words from the audience at {self.server.audience_url}, or scan:\n{aqr}"
        return text

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
