"""`run.py play`: the runtime around the engine.

The main thread runs the frame loop (SDL wants it): gather what arrived (keys, OSC, tokens, speech),
`engine.step`, route the outbox to its owners' queues, fold events into the stage, draw, present,
then wait for the next frame deadline. Everything slow lives on its owner's thread or process.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys

from performance.controllers.registry import check_controller_args
from performance.runtime.args import add_play_arguments
from performance.show.schema import ConfigError

log = logging.getLogger("lectern.play")
TRANSCRIPT_CAP_BYTES = 1 << 30  # an installation keeps at most 1 GiB of transcripts


def register_play(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("play", help="perform a setlist", description="Perform a setlist on the stage.")
    add_play_arguments(p)
    p.set_defaults(func=run_play)


def run_play(args: argparse.Namespace) -> int:
    # lazy: `run.py --help` imports this module; what the command needs loads when it runs
    from performance.show.config import load_setlist

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID`: every thread's stack on stderr, the show goes on
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    if args.time_scale <= 0:
        print(f"--time-scale {args.time_scale}: must be > 0", file=sys.stderr)
        return 2
    if args.install and not args.supervised and os.environ.get("LECTERN_SUPERVISED") != "1":
        try:
            # lazy: `run.py --help` imports this module; what the command needs loads when it runs
            from performance.install.supervisor import supervise
        except ImportError:
            supervise = None
        if supervise is not None:
            return supervise(sys.argv[1:])
    # lazy: `run.py --help` imports this module; what the command needs loads when it runs
    from performance.install.logs import rotate_transcripts, setup_logging

    # with the operator view on, log lines go to a file and to the view's own lines, never loose
    # into the terminal under the table
    operator_view = not args.quiet and sys.stdout.isatty()
    setup_logging(args.transcript_dir / "logs" if args.install or operator_view else None, quiet=args.quiet)
    try:
        setlist = load_setlist(args.setlist)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    problem = check_controller_args(args, setlist)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.install:
        # lazy: `run.py --help` imports this module; what the command needs loads when it runs
        from performance.show.reload import installation_setlist

        setlist = installation_setlist(setlist, True)  # an installation loops forever
        if args.transcript_dir.exists():
            for f in rotate_transcripts(args.transcript_dir, TRANSCRIPT_CAP_BYTES):
                log.warning("transcript rotated out: %s", f.name)
    start_scene = None
    if args.scene:
        idx = setlist.scene_index(int(args.scene) if args.scene.isdigit() else args.scene)
        if idx is None:
            print(f"error: --scene {args.scene!r}: no such scene (1..{len(setlist.entries)} or a scene name)",
                  file=sys.stderr)
            return 2
        start_scene = idx + 1
    # lazy: `run.py --help` imports this module; what the command needs loads when it runs
    from performance.runtime.loop import FrameLoop
    from performance.runtime.session import Session

    return FrameLoop(Session(args, setlist, start_scene)).run()
