"""OSC bytes: datagrams and bundles parsed and checked, messages built, SLIP framing (OSC 1.1).

No sockets, no state: the server and the tests feed bytes in and get messages out. A packet that
is not exactly what its type tags say is refused (python-osc alone would read a missing float as
0.0), and python-osc's own log lines about bad packets are filtered (the server counts them).
"""

from __future__ import annotations

import logging
import struct

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

MAX_DATAGRAM = 65507  # the largest UDP payload; anything bigger is not a packet we could have sent
MAX_BUNDLE_DEPTH = 8
NTP_EPOCH = 2208988800
SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD


class _QuietPythonOsc(logging.Filter):
    """python-osc logs every unknown type tag on the root logger: one line per bad packet would
    flood an installation's log. Our own receive path counts and logs them, rate-limited."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pythonosc" not in record.pathname


_QUIET = _QuietPythonOsc()


def parse_datagram(data: bytes, depth: int = 0) -> list[tuple[float | None, OscMessage]]:
    """(NTP timetag in seconds or None = at once, message) for every message in a packet, nested
    bundles flattened (an inner bundle's own timetag wins); raises on anything malformed."""
    if len(data) > MAX_DATAGRAM:
        raise ValueError("oversize packet")
    if data.startswith(b"#bundle\x00"):
        if depth >= MAX_BUNDLE_DEPTH:
            raise ValueError("bundles nested too deep")
        if len(data) < 16:
            raise ValueError("truncated bundle")
        sec, frac = struct.unpack(">II", data[8:16])
        tag = None if (sec, frac) == (0, 1) else sec + frac / 2**32
        out, i = [], 16
        while i < len(data):
            if i + 4 > len(data):
                raise ValueError("truncated bundle element size")
            (size,) = struct.unpack(">i", data[i:i + 4])
            if size <= 0 or size % 4 or i + 4 + size > len(data):
                raise ValueError("bad bundle element size")
            for inner_tag, msg in parse_datagram(data[i + 4:i + 4 + size], depth + 1):
                out.append((inner_tag if inner_tag is not None else tag, msg))
            i += 4 + size
        return out
    check_arguments(data)
    return [(None, OscMessage(data))]


_FIXED = {"i": 4, "f": 4, "c": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8, "T": 0, "F": 0, "N": 0, "I": 0}


def _padded_string_end(data: bytes, i: int) -> int:
    end = data.find(b"\x00", i)
    if end < 0:
        raise ValueError("string runs past the end of the packet")
    return (end // 4 + 1) * 4


def check_arguments(data: bytes) -> None:
    """Raise ValueError unless the arguments fill exactly what the type tags say (python-osc reads a
    missing float as 0.0: `/lectern/temperature ,f` with no data must not become temperature 0)."""
    i = _padded_string_end(data, 0)
    if i >= len(data):
        return  # no type tag string: an old-style message without arguments
    if data[i:i + 1] != b",":
        raise ValueError("no type tag string")
    j = _padded_string_end(data, i)
    tags = data[i + 1:data.index(b"\x00", i)].decode("ascii", "replace")
    for tag in tags:
        if tag in _FIXED:
            j += _FIXED[tag]
        elif tag in "sS":
            if j >= len(data):
                raise ValueError(f"type tag '{tag}' has no data")
            j = _padded_string_end(data, j)
        elif tag == "b":
            if j + 4 > len(data):
                raise ValueError("blob without its size")
            (size,) = struct.unpack(">i", data[j:j + 4])
            if size < 0:
                raise ValueError("negative blob size")
            j += 4 + (size + 3) // 4 * 4
        elif tag in "[]":
            continue
        else:
            raise ValueError(f"unknown type tag '{tag}'")
        if j > len(data):
            raise ValueError(f"arguments do not match the type tags ,{tags} (packet too short)")
    if j != len(data):
        raise ValueError(f"{len(data) - j} bytes after the arguments the type tags ,{tags} describe")


def bundle_elements(data: bytes) -> int:
    """How many elements a bundle holds at its top level (1 for a message), read from the size
    fields alone; a broken size ends the count (the parser then refuses the packet)."""
    if not data.startswith(b"#bundle\x00"):
        return 1
    n, i = 0, 16
    while i + 4 <= len(data):
        (size,) = struct.unpack(">i", data[i:i + 4])
        if size <= 0:
            break
        n += 1
        i += 4 + size
    return max(1, n)


def address_of(data: bytes) -> str | None:
    """The address of a plain message whose arguments could not be read (to answer it), or None."""
    if not data.startswith(b"/"):
        return None
    end = data.find(b"\x00")
    try:
        return data[:end].decode("ascii") if 0 < end <= 256 else None
    except UnicodeDecodeError:
        return None


def slip_encode(packet: bytes) -> bytes:
    """OSC 1.1 stream framing: END, the escaped packet, END."""
    body = packet.replace(bytes([SLIP_ESC]), bytes([SLIP_ESC, SLIP_ESC_ESC]))
    body = body.replace(bytes([SLIP_END]), bytes([SLIP_ESC, SLIP_ESC_END]))
    return bytes([SLIP_END]) + body + bytes([SLIP_END])


def slip_decode(frame: bytes) -> bytes:
    """One SLIP frame (without its END bytes) back to the packet; raises on a broken escape."""
    out, esc = bytearray(), False
    for b in frame:
        if esc:
            if b not in (SLIP_ESC_END, SLIP_ESC_ESC):
                raise ValueError("bad SLIP escape")
            out.append(SLIP_END if b == SLIP_ESC_END else SLIP_ESC)
            esc = False
        elif b == SLIP_ESC:
            esc = True
        else:
            out.append(b)
    if esc:
        raise ValueError("SLIP frame ends inside an escape")
    return bytes(out)


def build_message(address: str, args: list) -> bytes:
    """One OSC message: bools and ints as int32, floats as float32, anything else as text."""
    b = OscMessageBuilder(address=address)
    for a in args:
        if isinstance(a, bool):
            b.add_arg(int(a), "i")
        elif isinstance(a, int):
            b.add_arg(a, "i")
        elif isinstance(a, float):
            b.add_arg(a, "f")
        else:  # text from a sender may hold undecodable bytes: send what can be sent
            b.add_arg(str(a).encode("utf-8", "replace").decode("utf-8"), "s")
    return b.build().dgram
