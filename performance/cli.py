"""`python run.py [command]`: argparse front door. Each owner registers its own command.

Command modules must not import torch or pygame at import time: `--help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from performance import __version__

# (module, function that adds its sub-parser). Order = order in --help.
_REGISTRARS = [
    ("performance.play", "register_play"),
    ("performance.check", "register_check"),
    ("performance.model_commands", "register_train"),
    ("performance.model_commands", "register_sample"),
    ("performance.model_commands", "register_bench"),
    ("performance.model_commands", "register_export"),
    ("performance.model_commands", "register_prepare"),
    ("performance.render", "register_render"),
    ("performance.controllers.osc.help", "register_osc"),
    ("performance.controllers.midi", "register_midi"),
    ("performance.install.status", "register_status"),
    ("performance.install.supervisor", "register_supervise"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python run.py",
        description="Lectern: a live engine for machine-written poetry. With no command, plays setlists/demo.toml.",
    )
    parser.add_argument("--version", action="version", version=f"lectern {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name, fn_name in _REGISTRARS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if module_name.startswith(e.name or "?"):  # not written yet in this checkout
                continue
            raise
        getattr(module, fn_name)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["play", "setlists/demo.toml", *argv]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    code = int(args.func(args) or 0)
    if args.command == "play":
        # The runtime has closed its files and joined what matters; native threads (SDL, PortAudio,
        # torch) must not get a chance to abort the process in their static destructors, so a
        # supervisor or CI reads the exit code we mean.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
