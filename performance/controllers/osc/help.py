"""`run.py osc`: the /lectern address table, printed from the one command table.

The commands and session verbs are performance.protocol.commands' TABLE and SESSION; nothing is
listed here twice. The state addresses follow the Snapshot (docs/architecture.md).
"""

from __future__ import annotations

import argparse

from performance.protocol.commands import SESSION, TYPE_NAMES, network_commands
from performance.protocol.snapshot import STATE

COMMANDS = network_commands()  # the one table (performance.protocol.commands), as OSC reaches it
TCP_COMMANDS = frozenset(c.name for c in COMMANDS + SESSION if c.tcp)  # also accepted over TCP with SLIP framing


def table_text() -> str:
    """The table as `python run.py osc` prints it: address, argument type, what it does [range]."""
    lines = ["Lectern OSC (UDP; default 127.0.0.1:9000; prefix /lectern)", "", "Commands (each answered with "
             "/lectern/reply <address> ok|error <detail>):"]
    for a in COMMANDS + SESSION:
        rng = f" [{a.range}]" if a.range else ""
        lines.append(f"  /lectern/{a.name:<22} {TYPE_NAMES[a.args]:<14} {a.does}{rng}")
    lines += ["", "State, pushed to subscribers on change and at least once a second:"]
    for name, types, does in STATE:
        lines.append(f"  /lectern/{name:<22} {types:<14} {does}")
    tcp = " ".join(f"/lectern/{n}" for n in sorted(TCP_COMMANDS))
    lines += ["", "Ints are accepted for floats and whole floats for ints (TouchOSC sends floats); 0|1 reads",
              "any number (>= 0.5 is on). A bundle with a future timetag is applied when it falls due.",
              "Senders are known by IP address: --osc-allow IP|NET[,...] drops all others, --osc-passcode",
              "asks each for /lectern/connect first, --osc-rate caps datagrams per second per sender.",
              f"TCP on the same port, SLIP-framed (OSC 1.1): {tcp}."]
    return "\n".join(lines)


def register_osc(sub: argparse._SubParsersAction) -> None:
    """Add `run.py osc` (prints the table; imports nothing heavy)."""
    p = sub.add_parser("osc", help="print the OSC address table", description="Print the OSC address table.")
    p.set_defaults(func=lambda args: print(table_text()) or 0)
