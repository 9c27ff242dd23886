"""OSC's own verbs, answered by the server and never sent to the show: ping, connect, subscribe,
unsubscribe. A subscription from an address that could be forged first proves its port hears us
(a token sent there must come back), so state can never be aimed at a victim."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from performance.controllers.osc.guard import _Sender
from performance.protocol.commands import PREFIX, SESSION_TABLE, CommandError, clean_args

OscServer = Any  # server.py's OscServer calls these with itself (it imports this module)

Reply = Callable[[bool, str], None]
SUBSCRIPTION_TTL_S = 600.0  # a subscription lapses unless its sender sends anything within this long
MAX_SUBSCRIBERS = 32


def session_verb(server: OscServer, name: str, params: tuple, addr: tuple[str, int], sender: _Sender, reply: Reply,
                 conn: socket.socket | None) -> None:
    """Answer one of SESSION_TABLE's verbs."""
    if name == "ping":  # like replies, the pong also goes to the subscribed port (oscsend exits at once)
        server._send(conn or addr, f"{PREFIX}/pong", [], sender)
        if sender.subscribed and (conn is not None or sender.subscribed != addr[1]):
            server._send((addr[0], sender.subscribed), f"{PREFIX}/pong", [], sender)
        reply(True, "pong")
    elif name == "connect":
        ok, detail = server.guard.connect(params[0] if params else "", sender, addr[0])
        if ok is False and detail.startswith("too many passcode"):
            server.counts["passcode_limited"] += 1
        elif ok is False and detail == "wrong passcode":
            server.counts["wrong_passcode"] += 1
        if ok is not None:
            reply(ok, detail)
        else:
            server.counts["passcode_limited"] += 1
    elif server.guard.needs_connect(sender):
        server.counts["not_connected"] += 1
        reply(False, "send /lectern/connect <passcode> first")
    elif name == "subscribe":
        subscribe(server, params, addr, sender, reply)
    elif name == "unsubscribe":
        reply(True, "unsubscribed")  # the subscribed port hears this one too
        sender.subscribed = None


def subscribe(server: OscServer, params: tuple, addr: tuple[str, int], sender: _Sender, reply: Reply) -> None:
    """/lectern/subscribe PORT [TOKEN]: state and replies to that UDP port of the sender's address."""
    try:
        _, (port,) = clean_args(SESSION_TABLE["subscribe"], params[:1], 0)
    except CommandError as e:
        server.counts["invalid"] += 1
        reply(False, str(e))
        return
    if (addr[0], port) == server.own_address:
        server.counts["invalid"] += 1
        reply(False, "subscribe: that port is this server's own")
        return
    token = params[1] if len(params) > 1 else None
    if not sender.verified and not (sender.pending_port == port and token == sender.token and sender.token):
        # an address we cannot trust: the port must prove it hears us before it gets anything
        # bigger than this request (a forged source would otherwise aim state at a victim)
        sender.pending_port, sender.token = port, int.from_bytes(os.urandom(4), "big") >> 1
        server._send((addr[0], port), f"{PREFIX}/token", [sender.token], sender)
        return
    if sender.subscribed is None and server.guard.subscriber_count() >= MAX_SUBSCRIBERS:
        server.counts["invalid"] += 1
        reply(False, f"busy: {MAX_SUBSCRIBERS} subscribers already")
        return
    sender.verified = True  # it echoed the token sent to its port: its address is real
    sender.pending_port = None
    sender.subscribed = port
    server._sent_state.pop((addr[0], port), None)  # a new subscriber gets everything at once
    server._wake()
    reply(True, f"subscribed on port {port} (renew within {SUBSCRIPTION_TTL_S:.0f} s: any message does)")
