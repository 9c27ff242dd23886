"""One session's parts: built in order of need, closed in reverse (frame thread only).

The window first (quiet and dark while models load), then the operator view, the worker with every
model of the set preloading, sound, the controllers, the transcript, the installation's helpers,
the stage, the recorder and the monitor; then the engine. `close` ends them in the order that
keeps what was made: the session's end in the transcript, sound before the recorder muxes it.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

from performance import STARTED
from performance.controllers.base import Context
from performance.controllers.inbox import Inbox
from performance.controllers.registry import Controllers
from performance.engine import Engine
from performance.install.heartbeat import Heartbeat
from performance.install.logs import replace_console
from performance.install.status import StatusWriter
from performance.operator import OperatorView
from performance.protocol.snapshot import Snapshot
from performance.protocol.worker import Preload
from performance.record.recorder import Recorder
from performance.record.transcript import TranscriptWriter
from performance.runtime.display import Display
from performance.runtime.publisher import Cadence, StatePublisher, compose
from performance.runtime.router import Router
from performance.runtime.stats import FPS, FrameStats, thread_cpu
from performance.runtime.watchdog import Watchdog
from performance.show.clock import MonotonicClock
from performance.textgen.base import ModelFileError
from performance.textgen.cards import read_card, resolve_model_dir
from performance.textgen.kinds import NEURAL_KINDS
from performance.worker.thread import GeneratorThread

log = logging.getLogger("lectern.play")
RECORD_FPS = 30


class Session:
    """Owns the services and the engine of one `run.py play`."""

    def __init__(self, args: argparse.Namespace, setlist, start_scene: int | None) -> None:
        self.args, self.setlist, self.start_scene = args, setlist, start_scene
        self.clock = MonotonicClock(args.time_scale, start_wall=getattr(args, "start_wall", None))
        self.inbox = Inbox()
        self.stats = FrameStats()
        self.display = Display(args, setlist)
        self.publisher = StatePublisher()  # the one place state goes out
        self.cadence = Cadence()
        self.quit_requested = False
        self.exit_code = 0
        self.restarts = int(os.environ.get("LECTERN_RESTARTS", "0"))
        # a recording needs the mix on disk to mux it; keep it beside the video unless asked elsewhere
        self.audio_out = args.audio_out or (args.record.with_name(args.record.stem + ".audio.wav") if args.record else None)
        self.warnings: list[str] = []
        self.sound = self.recorder = self.operator = self.heartbeat = self.status = None
        self.snapshot: Snapshot | None = None
        self._console_handlers: list = []

    # ---- set-up ----------------------------------------------------------------------------------
    def open(self) -> None:
        self.display.open()
        self._open_operator()
        self._import_model_code()
        self._start_worker()
        self._start_sound()
        self._start_controllers()

        # "wall" = wall0 + t: wall0 is the engine's wall time at t = 0, not now (start-up x time-scale later)
        self.transcript = TranscriptWriter(self.args.transcript_dir, self.setlist.name, self.clock.start_wall)
        self.transcript.start()
        self._start_install_helpers()
        if self.operator is not None:
            self.operator.start()
        freeze_start_up_heap()
        if self.args.stats_json:  # the show's own collections, from here on
            self.stats.gc.start()
        self.display.start_stage()
        self._start_recorder()
        self.display.open_monitor()
        self.router = Router(self)
        self.watchdog = Watchdog(self.worker)

        self.engine = Engine(self.setlist, session_seed=self.args.seed,
                             stage={"width": self.display.size[0], "height": self.display.size[1], "fps": FPS},
                             start_scene=self.start_scene, lookahead_scale=int(math.ceil(self.args.time_scale)))

    def _open_operator(self) -> None:
        if self.args.quiet or not sys.stdout.isatty():
            return

        # from here on log lines go to the view's own lines (and the log file), not the terminal
        self.operator = OperatorView()
        self._console_handlers = replace_console(self.operator.handler())

    def _import_model_code(self) -> None:
        """Import torch before the first frame when a neural model will be needed: a second of
        import in the worker thread holds the GIL and would drop the stage's first frames."""

        for entry in self.setlist.entries:
            for m in entry.scene.models:
                try:
                    if read_card(resolve_model_dir(m))["kind"] in NEURAL_KINDS:
                        # lazy: this pulls in torch (~1.5 s); only the paths that run a neural model pay for it
                        import performance.textgen.neural  # noqa: F401
                        return
                except ModelFileError:
                    continue

    def _start_worker(self) -> None:
        self.worker = GeneratorThread()
        self.worker.start()
        # every model of the set loads now, in order of need, so a scene change never waits for one
        for m in dict.fromkeys(m for entry in self.setlist.entries for m in entry.scene.models):
            self.worker.send(Preload(m))
        for m in dict.fromkeys(served_fallbacks(self.setlist)):  # ready before a served model's server fails
            self.worker.send(Preload(m))

    def _start_sound(self) -> None:
        try:
            # lazy: numpy and the sound/x-ray code load only when that part starts
            from performance.sound import SoundSystem

            voices = [e.scene.voice.voice for e in self.setlist.entries if e.scene.voice is not None]
            self.sound = SoundSystem(self.clock, device=self.args.audio_device, audio_out=self.audio_out,
                                     null_sink=self.args.headless,  # a Piper voice loads as the show starts
                                     preload_voice=next((v for v in voices if v.startswith("piper:")), ""))
            self.sound.start()
        except ImportError:
            self.sound = None
        except Exception as e:  # no audio is not a reason to stop the show
            self.warn(f"sound unavailable: {e}")
            self.sound = None

    def _start_controllers(self) -> None:
        ctx = Context(self.setlist, self.args.transcript_dir, clock=self.clock, quiet=self.args.quiet)
        self.controllers = Controllers(self.args, ctx)
        self.controllers.start(self.inbox)
        for w in self.controllers.warnings:
            self.warn(w)
        self.publisher.subscribe(self.controllers.on_state)
        text = self.controllers.announce()
        if text and not self.args.quiet:
            print(text, file=sys.stderr)
        if self.operator is not None:  # the ways in stay on the operator's own screen, tokens and all
            for label, line in self.controllers.private_status().items():
                self.operator.pin(label, line)

    def _start_install_helpers(self) -> None:
        if not self.args.install:
            return
        self.heartbeat = Heartbeat()
        state_dir = Path(os.environ.get("LECTERN_STATE_DIR", str(self.args.transcript_dir)))
        self.status = StatusWriter(state_dir / "status.json")

    def _start_recorder(self) -> None:
        if not self.args.record or self.display.terminal:
            return

        self.recorder = Recorder(self.args.record, self.display.size, fps=RECORD_FPS, clock=self.clock,
                                 audio=self.audio_out if self.sound is not None else None)
        self.recorder.start()

    def warn(self, text: str) -> None:
        """A warning that stays true for the session: on the terminal (or pinned in the operator
        view), in the log, and in the status errors."""
        log.warning("%s", text)
        self.warnings.append(text)
        if self.operator is not None:  # without the view, the log line above reached the terminal
            self.operator.warn(text)

    # ---- state going out -------------------------------------------------------------------------
    def compose(self) -> Snapshot:
        """This moment's Snapshot: the engine's report and the runtime's own health."""
        schedule = self.controllers.get("schedule")
        health = (round(time.monotonic() - STARTED, 1), round(self.stats.fps(), 1), self.engine.poem_counter,
                  self.restarts + self.worker.restarts, _rss_mb())
        return compose(self.engine.snapshot(), health=health, tokens=self.worker.tokens,
                       next_at=schedule.upcoming() if schedule is not None else (),
                       warnings=tuple(self.warnings + self.watchdog.errors),
                       open=not (schedule is not None and schedule.closed),
                       next_change=schedule.next_change() if schedule is not None else None,
                       setlist=self.setlist.file or "", controllers=self.controllers.status(),
                       speaking_voice=self._speaking_voice())

    def _speaking_voice(self) -> str:
        """The voice reading now: the live choice (OSC, MIDI, the remote) or the scene's."""
        v = self.engine.scene.voice
        if v is None or getattr(v, "mode", "off") == "off":
            return ""
        live = self.sound.override.get("voice") if self.sound is not None else None
        return str(live or getattr(v, "voice", ""))

    def publish(self) -> None:
        """Build the Snapshot and hand it to every listener (controllers, operator view, status.json)."""
        snap = self.snapshot = self.compose()
        self.publisher.publish(snap)
        if self.operator is not None:
            self.operator.update(snap, self.stats.fps())
        if self.status is not None:
            self.status.publish(snap)

    # ---- the end ---------------------------------------------------------------------------------
    def close(self, now: float) -> None:
        self._cpu_by_thread = thread_cpu() if self.args.stats_json else {}  # before any owner stops
        try:
            self.router.route(self.engine.end(now))
        except Exception:
            log.exception("ending the session failed")
        first = None
        if self.engine.first_token_t is not None:
            # first_token_s is real time from process start to the first token on the stage
            first = self.clock.real_seconds(self.engine.first_token_t) + (self.clock._t0 - STARTED)
        self.display.screenshot(self.args.screenshot)
        # sound first: the recorder muxes the finished audio mix into the video
        for closer in (getattr(self.sound, "close", None),
                       (lambda: self.recorder.close(now)) if self.recorder is not None else None,
                       self.controllers.stop, getattr(self.operator, "stop", None)):
            if closer:
                try:
                    closer()
                except Exception:
                    log.exception("shutdown step failed")
        if self.operator is not None:  # the table is gone: log lines may reach the terminal again
            replace_console(None, self._console_handlers)
        if self.args.stats_json:
            self.stats.gc.stop()
            self._write_stats(first)
        self.worker.stop()
        self.transcript.close()
        self.display.close()

    def _write_stats(self, first: float | None) -> None:
        summary = self.stats.summary(self.display.size[0], self.display.size[1], first)
        if self.display.monitor is not None:
            summary["monitor_redraws"] = self.display.monitor.redraws
        summary["timed_commands_dropped"] = sum(self.engine.waiting.dropped.values())  # timed OSC commands refused
        if self.recorder is not None:
            summary["recorder_dropped"] = self.recorder.dropped
            summary["recorder_frames"] = self.recorder.frames_written
        times = os.times()
        summary["cpu_s_process"] = round(times.user + times.system, 2)
        summary["cpu_s_by_thread"] = self._cpu_by_thread
        self.args.stats_json.parent.mkdir(parents=True, exist_ok=True)
        self.args.stats_json.write_text(json.dumps(summary, indent=1))


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError):
        return 0.0


def served_fallbacks(setlist) -> list[str]:
    """The fallback models of scenes that perform with a served model."""

    out = []
    for entry in setlist.entries:
        for m in entry.scene.models:
            try:
                if read_card(resolve_model_dir(m))["kind"] == "served":
                    out.append(entry.scene.fallback)
            except ModelFileError:
                pass
    return out


def freeze_start_up_heap() -> None:
    """Collect once, then move everything start-up made (torch, pygame, aiohttp: ~180,000 objects)
    out of the collector's sight. Python's full collections walk every tracked object with the
    interpreter held, every thread waiting, the frame loop too: 140 ms here, and 270-400 ms frame
    gaps under load. Frozen, a full collection walks only what the show made since, well under a
    millisecond; nothing made later is frozen, so a weeks-long gallery run still frees its cycles."""
    gc.collect()
    gc.freeze()
