"""OSC: bytes (wire.py), who may talk (guard.py), OSC's own verbs (session.py), the state's shapes
(feedback.py), sockets and threads (server.py), and `run.py osc` (help.py)."""

from performance.controllers.osc.server import OscServer
from performance.controllers.osc.wire import parse_datagram, slip_decode, slip_encode

__all__ = ["OscServer", "parse_datagram", "slip_decode", "slip_encode"]
