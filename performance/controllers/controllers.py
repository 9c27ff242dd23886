"""Controllers beyond OSC and the keyboard, as the runtime sees them: MIDI and the browser remote.

The runtime makes one `Controllers`, subscribes it to the state publisher, lets it look at each
frame's commands (`filter`: /lectern/learn is answered here, everything else goes on to the engine
and may name a learn target) and stops it at the end. Each controller owns its own thread.
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
from collections.abc import Callable
from pathlib import Path

from performance.controllers.publisher import StatePublisher
from performance.protocol.commands import Command

log = logging.getLogger("lectern.controllers")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAP = ROOT / "assets" / "controllers" / "generic-8x16.toml"


def add_controller_arguments(p: argparse.ArgumentParser) -> None:
    """--midi, --midi-map, --remote, --remote-host, --allow-open-network on `run.py play`."""
    g = p.add_argument_group("controllers")
    g.add_argument("--midi", metavar="PORT", help="MIDI controller: part of its port name (`run.py midi` lists them)")
    g.add_argument("--midi-map", type=Path, metavar="FILE",
                   help="MIDI mapping file (default: the setlist's midi_map, else assets/controllers/generic-8x16.toml)")
    g.add_argument("--remote", type=int, metavar="PORT", help="serve the browser remote on this port (off by default)")
    g.add_argument("--remote-host", default="127.0.0.1", metavar="H",
                   help="address the remote listens on (default loopback; 0.0.0.0 = the LAN)")
    g.add_argument("--allow-open-network", action="store_true",
                   help="let OSC listen beyond loopback without --osc-passcode (anyone on the network may steer)")


class Controllers:
    """MIDI (when a port is named) and the remote (when a port is given) for one session."""

    def __init__(self, args: argparse.Namespace, setlist, inbox: queue.Queue, publisher: StatePublisher,
                 session_dir: Path, passcode: str | None = None) -> None:
        self.midi = None
        self.remote = None
        names: Callable[[], list[str]] = lambda: [e.scene.name for e in setlist.entries]  # noqa: E731
        port = getattr(args, "midi", None) or getattr(setlist, "midi", None)
        if port:
            from performance.controllers.mapping import load_mapping
            from performance.controllers.midi import MidiController, learned_path_for

            map_file = getattr(args, "midi_map", None) or getattr(setlist, "midi_map", None) or DEFAULT_MAP
            mapping = load_mapping(map_file)  # a bad mapping file is a ConfigError: one line, before the show
            self.midi = MidiController(inbox, port, mapping, learned_path=learned_path_for(session_dir),
                                       scene_count=lambda: len(setlist.entries))
            self.midi.start()
            publisher.subscribe(self.midi.publish_state)
        if getattr(args, "remote", None) is not None:
            from performance.controllers.remote import RemoteError, RemoteServer

            try:
                self.remote = RemoteServer(inbox, host=args.remote_host, port=args.remote, passcode=passcode,
                                           scene_names=names)
                self.remote.start()
                publisher.subscribe(self.remote.publish_state)
                # the token's URL: printed (stderr) even with --quiet, the one way in without a passcode
                log.warning("remote: open %s (its token lets a phone steer the show: keep it private)",
                            self.remote.token_url)
            except (RemoteError, OSError) as e:
                print(f"remote: {e}; continuing without the remote (choose another --remote port)", file=sys.stderr)
                self.remote = None

    def announce(self) -> str:
        """The remote's address as text and QR code, for the operator (empty without a remote)."""
        if self.remote is None:
            return ""
        try:
            qr = self.remote.qr_text()
        except Exception as e:  # no QR is no reason to stop
            qr = f"(no QR code: {e})\n"
        return f"remote: open {self.remote.token_url} on a phone, or scan:\n{qr}"

    def filter(self, inbox: list) -> list:
        """Answer /lectern/learn here; let the MIDI controller see the rest (a learn target)."""
        out = []
        for cmd in inbox:
            if isinstance(cmd, Command):
                if cmd.name == "learn":
                    ok, detail = (self.midi.learn(str(cmd.args[0])) if self.midi is not None
                                  else (False, "learn: no MIDI controller (start with --midi PORT)"))
                    if cmd.reply:
                        cmd.reply(ok, detail)
                    continue
                if self.midi is not None:
                    self.midi.observe(cmd)
            out.append(cmd)
        return out

    def extras(self) -> dict:
        """What the state adds for the operator view and the remote: learn state, the remote's address."""
        out = {}
        if self.midi is not None:
            out["learn"] = self.midi.learn_state
            out["midi"] = self.midi.in_name or f"waiting for {self.midi.match!r}"
        if self.remote is not None:
            out["remote"] = self.remote.url
        return out

    def stop(self) -> None:
        """Stop MIDI and the remote."""
        for c in (self.midi, self.remote):
            if c is not None:
                try:
                    c.stop()
                except Exception:
                    log.exception("stopping a controller failed")


def check_controller_args(args: argparse.Namespace, setlist) -> str | None:
    """One line saying what is wrong with the controller options (before the show), or None."""
    from performance.controllers.auth import open_network_refusal
    from performance.show.schema import ConfigError

    if getattr(args, "remote", None) is not None and not 0 <= args.remote <= 65535:
        return f"--remote {args.remote}: a TCP port 0..65535 (0 = any free one)"
    problem = open_network_refusal(
        osc_host=getattr(args, "osc_host", None) if getattr(args, "osc_port", 0) else None,
        osc_passcode=getattr(args, "osc_passcode", None),
        osc_allow=getattr(args, "osc_allow", None),
        remote_host=getattr(args, "remote_host", None) if getattr(args, "remote", None) is not None else None,
        allow_open=bool(getattr(args, "allow_open_network", False)))
    if problem:
        return problem
    if getattr(args, "midi", None) or getattr(setlist, "midi", None):
        from performance.controllers.mapping import load_mapping

        try:
            load_mapping(getattr(args, "midi_map", None) or getattr(setlist, "midi_map", None) or DEFAULT_MAP)
        except ConfigError as e:
            return str(e)
    return None
