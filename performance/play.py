"""`run.py play`: the runtime around the engine.

The main thread runs the frame loop (SDL wants it): gather what arrived (keys, OSC, tokens, speech),
`engine.step`, route the outbox to its owners' queues, fold events into the stage, draw, present,
then wait for the next frame deadline. Everything slow lives on its owner's thread or process.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import queue
import sys
import threading
import time
from pathlib import Path

from performance import STARTED, faults
from performance.check import served_fallbacks
from performance.runtime.args import add_play_arguments
from performance.runtime.stats import FPS, FrameStats
from performance.show.schema import ConfigError

log = logging.getLogger("lectern.play")
TRANSCRIPT_CAP_BYTES = 1 << 30  # an installation keeps at most 1 GiB of transcripts
RECORD_FPS = 30
STALL_S = 20.0  # a poem on stage that gets no token from the worker this long restarts the worker
PLANNED_RESTART = 75  # the supervisor restarts at once, without counting a crash


def register_play(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("play", help="perform a setlist", description="Perform a setlist on the stage.")
    add_play_arguments(p)
    p.set_defaults(func=run_play)


def run_play(args: argparse.Namespace) -> int:
    from performance.show.config import load_setlist

    if args.time_scale <= 0:
        print(f"--time-scale {args.time_scale}: must be > 0", file=sys.stderr)
        return 2
    if args.install and not args.supervised and os.environ.get("LECTERN_SUPERVISED") != "1":
        try:
            from performance.install.supervisor import supervise
        except ImportError:
            supervise = None
        if supervise is not None:
            return supervise(sys.argv[1:])
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
    from performance.controllers.controllers import check_controller_args

    problem = check_controller_args(args, setlist)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.install:
        import dataclasses

        if setlist.install is None or setlist.install.loop:
            setlist = dataclasses.replace(setlist, loop=True)  # an installation loops forever
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
    runtime = Runtime(args, setlist, start_scene)
    return runtime.run()


class Runtime:
    """Owns the threads and the frame loop for one session."""

    def __init__(self, args: argparse.Namespace, setlist, start_scene: int | None) -> None:
        from performance.show.clock import MonotonicClock

        self.args = args
        self.setlist = setlist
        self.start_scene = start_scene
        self.timetable = _timetable(setlist)
        self.clock = MonotonicClock(args.time_scale, start_wall=getattr(args, "start_wall", None))
        if self.timetable is not None:
            self.timetable.start(self.clock.wall())
        self.inbox: queue.Queue = queue.Queue(maxsize=4096)
        self.stats = FrameStats()
        self.quit_requested = False
        self.last_ctrl_q = -1e9
        self.window = None
        self.terminal = False
        self.size = args.window or (1920, 1080)
        self.sound = None
        self.osc = None
        self.controllers = None
        from performance.controllers.publisher import StatePublisher

        self.publisher = StatePublisher()  # the one place state goes out: OSC, MIDI, remote
        self.recorder = None
        self.operator = None
        self.advertiser = None
        self.monitor = None
        self.last_view = None
        self.hours = setlist.install
        self.closed = False
        self.unlocked = not args.install
        self.heartbeat = None
        self.status = None
        self.restarts = int(os.environ.get("LECTERN_RESTARTS", "0"))
        # a recording needs the mix on disk to mux it; keep it beside the video unless asked elsewhere
        self.audio_out = args.audio_out or (args.record.with_name(args.record.stem + ".audio.wav") if args.record else None)
        self.errors: list[str] = []
        self._warnings: list[str] = []
        self._console_handlers: list = []
        self.exit_code = 0
        self.last_worker_output = time.monotonic()
        self.frame_changed = True
        self._last_view_key = None

    # -- set-up --------------------------------------------------------------------------------
    def _open_display(self) -> None:
        if self.args.headless:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        os.environ.setdefault("SDL_VIDEO_ALLOW_SCREENSAVER", "0")
        # The stage draws in software and presents a finished picture. SDL's default would upload it
        # through a GL renderer, which on a machine without a GPU driver (Xvfb, many projector PCs)
        # is Mesa's llvmpipe: 12-48 ms per present on 2 cores, and the window is destroyed and
        # recreated to get a GL context. A plain X11 (XShm) framebuffer presents in well under 1 ms.
        os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
        from performance.stage.window import StageWindow, display_available

        if not display_available(self.args.headless):  # SDL would open an invisible window nobody sees
            print("no display could be opened (no DISPLAY or WAYLAND_DISPLAY); performing on the terminal instead",
                  file=sys.stderr)
            self.terminal = True
            return
        import pygame

        try:
            pygame.display.init()
            pygame.font.init()
            self.window = StageWindow(self.size, fullscreen=not (self.args.headless or self.args.window),
                                      display=self.args.display, headless=self.args.headless)
            self.window.open()
            self.size = self.window.size
            self._loading_frame()
        except pygame.error as e:
            print(f"no display could be opened ({e}); performing on the terminal instead", file=sys.stderr)
            self.terminal = True
            self.window = None

    @property
    def screen(self):
        """The surface the stage draws on this frame (None on the terminal)."""
        return self.window.surface if self.window is not None else None

    def _loading_frame(self) -> None:
        """The window appears at once, quiet and dark, while models load: never a void or garbage."""
        import pygame

        surface = self.window.surface
        surface.fill((0, 0, 0))
        try:
            from performance.stage.fonts import FALLBACK_FONT

            font = pygame.font.Font(str(FALLBACK_FONT), max(24, round(self.size[1] * 0.022)))
            text = font.render("·  ·  ·", True, (90, 90, 90))
            surface.blit(text, text.get_rect(center=(self.size[0] // 2, self.size[1] // 2)))
        except Exception:  # a missing font must not keep the window from appearing
            log.debug("loading frame without text", exc_info=True)
        self.window.flip()
        pygame.event.pump()

    def _window_changed(self, change) -> None:
        """The window's size changed (fullscreen toggle, window manager, a new display): lay out again."""
        if change is None or self.renderer is None:
            return
        from performance.stage.draw import StageRenderer

        self.size = change.size
        self.renderer = StageRenderer(self.size)
        self._last_view_key = None
        log.info("stage %s: %dx%d", change.reason, *self.size)

    def _display_changed(self) -> None:
        """Once a second: a projector unplugged or swapped re-enters fullscreen on what is there now."""
        if self.window is not None:
            self._window_changed(self.window.check_displays())

    def _import_model_code(self) -> None:
        """Import torch before the first frame when a neural model will be needed: a second of
        import in the worker thread holds the GIL and would drop the stage's first frames."""
        from performance.textgen.base import ModelFileError
        from performance.textgen.cards import read_card, resolve_model_dir
        from performance.textgen.kinds import NEURAL_KINDS

        for entry in self.setlist.entries:
            for m in entry.scene.models:
                try:
                    if read_card(resolve_model_dir(m))["kind"] in NEURAL_KINDS:
                        import performance.textgen.neural  # noqa: F401
                        return
                except ModelFileError:
                    continue

    def _start_services(self) -> None:
        from performance.protocol.worker import Preload
        from performance.worker.thread import GeneratorThread

        if not self.args.quiet and sys.stdout.isatty():
            from performance.install.logs import replace_console
            from performance.operator import OperatorView

            # from here on log lines go to the view's own lines (and the log file), not the terminal
            self.operator = OperatorView()
            self._console_handlers = replace_console(self.operator.handler())

        self._import_model_code()

        self.worker = GeneratorThread()
        self.worker.start()
        # every model of the set loads now, in order of need, so a scene change never waits for one
        for m in dict.fromkeys(m for entry in self.setlist.entries for m in entry.scene.models):
            self.worker.send(Preload(m))
        for m in dict.fromkeys(served_fallbacks(self.setlist)):  # ready before a served model's server fails
            self.worker.send(Preload(m))
        try:
            from performance.sound import SoundSystem

            self.sound = SoundSystem(self.clock, device=self.args.audio_device, audio_out=self.audio_out,
                                     null_sink=self.args.headless)
            self.sound.start()
        except ImportError:
            self.sound = None
        except Exception as e:  # no audio is not a reason to stop the show
            self._warn(f"sound unavailable: {e}")
            self.sound = None
        if self.args.osc_port:
            try:
                from performance.controllers.osc import OscServer

                allow = [a.strip() for a in self.args.osc_allow.split(",")] if self.args.osc_allow else None
                self.osc = OscServer(self.inbox, host=self.args.osc_host, port=self.args.osc_port, allow=allow,
                                     passcode=self.args.osc_passcode, scene_count=lambda: len(self.setlist.entries),
                                     clock=self.clock, rate_limit=self.args.osc_rate)
                self.osc.start()
                self._advertise()
            except ImportError:
                self.osc = None
            except OSError as e:
                self._warn(f"OSC: cannot listen on {self.args.osc_host}:{self.args.osc_port} ({e.strerror}); "
                           "continuing without OSC (choose another --osc-port)")
                self.osc = None
        if self.osc is not None:
            self.publisher.subscribe(self.osc.publish_state)
        from performance.controllers.controllers import Controllers

        self.controllers = Controllers(self.args, self.setlist, self.inbox, self.publisher, self.args.transcript_dir,
                                       passcode=self.args.osc_passcode)
        if not self.args.quiet and self.controllers.remote is not None:
            print(self.controllers.announce(), file=sys.stderr)
        from performance.transcript import TranscriptWriter

        # "wall" = wall0 + t: wall0 is the engine's wall time at t = 0, not now (start-up x time-scale later)
        self.transcript = TranscriptWriter(self.args.transcript_dir, self.setlist.name, self.clock.start_wall)
        self.transcript.start()
        if self.args.install:
            try:
                from performance.install.heartbeat import Heartbeat
                from performance.install.status import StatusWriter

                self.heartbeat = Heartbeat()
                state_dir = Path(os.environ.get("LECTERN_STATE_DIR", str(self.args.transcript_dir)))
                self.status = StatusWriter(state_dir / "status.json")
            except ImportError:
                pass
        if self.operator is not None:
            self.operator.start()

    def _advertise(self) -> None:
        from performance.controllers.advertise import Advertiser, should_advertise

        if should_advertise(self.args.osc_host, self.args.no_advertise):
            self.advertiser = Advertiser(f"Lectern {self.setlist.name} on {os.uname().nodename}", self.osc.port,
                                         self.args.osc_host, {"prefix": "/lectern", "setlist": self.setlist.name})
            self.advertiser.start()

    def _monitor_frame(self) -> float:
        """Draw and present the poet's monitor (when what it shows changed); its cost in seconds,
        counted in the frame's work time."""
        from performance.stage.monitor import monitor_info

        t0 = time.perf_counter()
        self.monitor.frame(self.last_view, monitor_info(self.engine, self.clock.wall(), self.timetable,
                                                        tuple(self.errors[-1:])))
        return time.perf_counter() - t0

    def _open_monitor(self) -> None:
        display = self.args.monitor if self.args.monitor is not None else self.setlist.monitor
        if display is not None and self.screen is not None:
            from performance.stage.monitor import Monitor

            stage = self.window.window if self.window is not None else None
            x, y = stage.position if stage is not None else (0, 0)
            self.monitor = Monitor.open(display, self.args.display, (x, y, *self.size))
            if stage is not None and not self.args.headless:
                try:
                    stage.focus()  # keys are read from every window, but the stage keeps the focus
                except Exception:
                    pass

    def _warn(self, text: str) -> None:
        """A warning that stays true for the session: on the terminal (or pinned in the operator
        view), in the log, and in the status errors."""
        log.warning("%s", text)
        self.errors.append(text)
        self._warnings.append(text)
        if self.operator is not None:  # without the view, the log line above reached the terminal
            self.operator.warn(text)

    def _start_stage(self) -> None:
        self.stage_state = None
        self.renderer = None
        if self.terminal:
            return
        from performance.stage.draw import StageRenderer
        from performance.stage.view import StageState

        self.stage_state = StageState()
        self.renderer = StageRenderer(self.size)
        if self.args.record:
            from performance.recorder import Recorder

            self.recorder = Recorder(self.args.record, self.size, fps=RECORD_FPS, clock=self.clock,
                                     audio=self.audio_out if self.sound is not None else None)
            self.recorder.start()

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        from performance.engine import Engine

        self._open_display()
        self._start_services()
        self._start_stage()
        self._open_monitor()
        self.engine = Engine(self.setlist, session_seed=self.args.seed,
                             stage={"width": self.size[0], "height": self.size[1], "fps": FPS},
                             start_scene=self.start_scene, lookahead_scale=int(math.ceil(self.args.time_scale)))
        self._route(self.engine.start(self.clock.now()))
        frame_s = 1.0 / FPS
        next_deadline = time.monotonic()
        last_status = 0.0
        started_wall = self.clock.wall()
        display_fault_done = False
        try:
            while not self.quit_requested:
                work_t0 = time.perf_counter()
                now = self.clock.now()
                if self.args.duration is not None and now >= self.args.duration:
                    break
                inbox = self._gather(now)
                self._hours(now, inbox)
                if self.timetable is not None and self._fire_timetable(now, inbox):
                    break
                out = self.engine.step(now, inbox)
                self._route(out)
                if self.engine.state == "ended" and not self.setlist.loop:
                    self._draw(now)
                    break
                self._draw(now)
                work = time.perf_counter() - work_t0
                if self.window is not None:
                    self.window.present(self.frame_changed, time.monotonic())
                presented = time.monotonic()
                if self.monitor is not None:  # after the stage's present: the audience's frame is never late for it
                    work += self._monitor_frame()
                self.stats.frame(work, presented, speaking=self.sound is not None and self.sound.speaking())
                for cmd in inbox:  # OSC message → the first presented frame that shows its effect
                    received = getattr(cmd, "received", None)
                    if received is None:
                        continue
                    lat = self.stats.osc_latency_ms if cmd.source == "osc" else self.stats.latency_ms.setdefault(cmd.source, [])
                    if len(lat) < 100_000:
                        lat.append((presented - received) * 1000)
                if self.recorder is not None and self.screen is not None:
                    self.recorder.frame(self.screen, now, changed=self.frame_changed)
                if self.heartbeat is not None:
                    self.heartbeat.beat()
                if presented - last_status >= 1.0:
                    last_status = presented
                    self._publish(now)
                    if self.hours is not None and self.args.install and self.hours.restart_due(started_wall, self.clock.wall()):
                        log.warning("daily restart")
                        self.exit_code = PLANNED_RESTART
                        break
                    if not display_fault_done and faults.active("display_changed"):
                        display_fault_done = True
                        if self.window is not None:  # fault injection: as if the screens had changed
                            self.window._desktops = []
                    self._display_changed()
                # deadlines advance by the frame period (no drift); after a stall, start afresh
                next_deadline += frame_s
                delay = next_deadline - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -frame_s:
                    next_deadline = time.monotonic()
        except KeyboardInterrupt:
            pass
        finally:
            self._shutdown()
        return self.exit_code

    def _gather(self, now: float) -> list:
        from performance.protocol.actions import SpeechStarted, SpeechState, WorkerRestarted

        inbox: list = []
        if self.screen is not None:
            inbox.extend(self._keys(now))
        while True:
            try:
                inbox.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        if self.osc is not None:
            inbox.extend(self.osc.drain())
        if self.controllers is not None:
            inbox = self.controllers.filter(inbox)
        stalled = self.engine.waiting_for_worker() and time.monotonic() - self.last_worker_output > STALL_S
        if not self.worker.alive() or stalled:
            why = "stalled" if stalled else "died"
            log.error("generator worker %s; restarting it", why)
            self.errors.append(f"generator worker {why}; restarted")
            self.worker.restart()
            self.last_worker_output = time.monotonic()
            inbox.append(WorkerRestarted(why))
        wq = self.worker.outbox
        got = 0
        for _ in range(20000):
            try:
                inbox.append(wq.get_nowait())
                got += 1
            except queue.Empty:
                break
        if got or not self.engine.waiting_for_worker():
            self.last_worker_output = time.monotonic()
        if self.sound is not None:
            for ev in self.sound.poll():
                inbox.append(SpeechStarted(ev.poem, ev.line, ev.start, ev.end))
            inbox.append(SpeechState(self.sound.speaking(), self.sound.speech_backlog()))
        return inbox

    def _hours(self, now: float, inbox: list) -> None:
        if self.hours is None or not self.args.install:
            return  # opening hours are for installations; a rehearsal plays whenever it is started
        from performance.protocol.commands import Command

        is_open = self.hours.is_open(self.clock.wall())
        if is_open and self.closed:
            self.closed = False
            inbox.append(Command("/lectern/resume", source="schedule"))
        elif not is_open and not self.closed:
            self.closed = True
            inbox.append(Command("/lectern/blackout", source="schedule"))

    def _fire_timetable(self, now: float, inbox: list) -> bool:
        """Due [[at]] firings onto the inbox (the engine writes each as a `command` event);
        True when a scheduled restart ends this run."""
        for f in self.timetable.tick(self.clock.wall()):
            if f.entry.open_only and self.closed:
                continue
            if f.entry.address != "restart":
                inbox.append(f.command())
                continue
            ok = self.args.install
            self.transcript.write({"t": now, "event": "command", "source": "schedule", "address": "restart",
                                   "args": [], "applied": ok, "detail": "planned restart" if ok else "only under --install"})
            if ok:
                log.warning("scheduled restart ([[at]] #%d)", f.entry.n)
                self.exit_code = PLANNED_RESTART
                return True
        return False

    def _keys(self, now: float) -> list:
        import pygame

        from performance.controllers.keyboard import command_for_key

        WINDOW_EVENTS = (pygame.WINDOWSIZECHANGED, pygame.WINDOWRESIZED, pygame.WINDOWDISPLAYCHANGED,
                         pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE, pygame.WINDOWSHOWN, pygame.WINDOWRESTORED)
        cmds = []
        for ev in pygame.event.get():
            if self.monitor is not None and self.monitor.handles(ev):
                continue  # the monitor's own window events are not the stage's
            if ev.type == pygame.QUIT:
                if not self.args.install:
                    self.quit_requested = True
            elif ev.type in WINDOW_EVENTS:
                self._window_changed(self.window.handle(ev))
            elif ev.type == pygame.KEYDOWN:
                mods = ev.mod
                ctrl = bool(mods & pygame.KMOD_CTRL)
                if not self.unlocked:
                    if self._unlock_chord(ev):
                        self.unlocked = True
                        log.warning("keyboard unlocked by the unlock chord")
                    continue
                if ctrl and ev.key == pygame.K_q:
                    t = time.monotonic()
                    if t - self.last_ctrl_q <= 2.0:
                        self.quit_requested = True
                    self.last_ctrl_q = t
                    continue
                if ev.key == pygame.K_f and self.window is not None:
                    self._window_changed(self.window.toggle_fullscreen())
                    continue
                cmd = command_for_key(ev.key, self.engine)
                if cmd is not None:
                    cmds.append(cmd)
        return cmds

    def _unlock_chord(self, ev) -> bool:
        import pygame

        chord = getattr(self.hours, "unlock_chord", "ctrl+shift+u") if self.hours else "ctrl+shift+u"
        parts = chord.lower().split("+")
        need_ctrl, need_shift, need_alt = "ctrl" in parts, "shift" in parts, "alt" in parts
        key = parts[-1]
        return (bool(ev.mod & pygame.KMOD_CTRL) == need_ctrl and bool(ev.mod & pygame.KMOD_SHIFT) == need_shift
                and bool(ev.mod & pygame.KMOD_ALT) == need_alt and pygame.key.name(ev.key) == key)

    def _route(self, out) -> None:
        from performance.protocol.actions import Keep, Sonify, SoundCtl, Speak

        for msg in out.worker:
            self.worker.send(msg)
        for ev in out.events:
            self.transcript.write(ev)
            if self.stage_state is not None:
                self.stage_state.apply(ev)
            if self.terminal:
                self._terminal_event(ev)
            if ev["event"] == "command" and self.operator is not None:
                self.operator.command(f"{ev['source']} {ev['address']} {ev['args']} → {ev['detail']}")
            if ev["event"] in ("scene", "poem_start", "command", "error"):
                self._publish(ev["t"])
        out.answer()
        for f in out.files:
            if isinstance(f, Keep):
                self.transcript.keep(f.text, f.footer, getattr(f, "reply", None))
        if self.sound is not None:
            for a in out.sound:
                try:
                    if isinstance(a, Speak):
                        from performance.sound import Utterance

                        self._utt = getattr(self, "_utt", 0) + 1
                        self.sound.speak(Utterance(self._utt, a.poem, a.line, a.text, a.settings, a.temperature))
                    elif isinstance(a, Sonify):
                        self.sound.sonify(a.text, a.p, a.temperature, a.settings, a.at)
                    elif isinstance(a, SoundCtl):
                        {"volume": lambda v: self.sound.set_volume(v), "panic": lambda v: self.sound.panic(v),
                         "blackout": lambda v: self.sound.blackout(), "resume": lambda v: self.sound.resume(),
                         "cancel": lambda v: self.sound.cancel_speech()}[a.op](a.value)
                except Exception:
                    log.exception("sound action failed; the show goes on")

    def _terminal_event(self, ev: dict) -> None:
        kind = ev["event"]
        if kind == "token":
            sys.stdout.write(ev["text"])
            sys.stdout.flush()
        elif kind == "poem_end":
            sys.stdout.write("\n\n")
        elif kind == "scene":
            sys.stdout.write(f"\n=== {ev['name']} ===\n\n")
        elif kind == "pause":
            sys.stdout.write(f"[pause {ev['seconds']:g} s]\n\n")

    def _draw(self, now: float) -> None:
        if self.screen is None or self.renderer is None:
            return
        view = self.last_view = self.stage_state.frame(now)
        self.renderer.draw(self.screen, view)
        # what makes two frames differ: an event, a fade step, the countdown's second, the highlight
        key = (view.version, round(view.brightness, 3),
               None if view.countdown is None else math.ceil(view.countdown - 1e-9),
               view.columns[0].highlight if view.columns else None)
        self.frame_changed = key != self._last_view_key
        self._last_view_key = key

    def _publish(self, now: float) -> None:
        snap = self.engine.snapshot()
        rss = _rss_mb()
        snap["health"] = (round(time.monotonic() - STARTED, 1), round(self.stats.fps(), 1), self.engine.poem_counter,
                          self.restarts + self.worker.restarts, rss)
        if self.timetable is not None:
            snap["next_at"] = [f"{due:%a %H:%M:%S} {e.do}" for due, e in self.timetable.upcoming(self.clock.wall())]
        snap["sonify"] = int(getattr(self.engine, "sonify_on", 0))
        if self.controllers is not None:
            snap.update(self.controllers.extras())
        self.publisher.publish(snap)
        if self.operator is not None:
            self.operator.update(snap, self.engine, self.worker, self.stats)
        if self.status is not None:
            nxt = None
            if self.hours is not None and hasattr(self.hours, "next_change"):
                try:
                    nxt = self.hours.next_change(self.clock.wall()).isoformat()
                except Exception:
                    nxt = None
            self.status.update({"uptime_s": snap["health"][0], "fps": snap["health"][1], "poems": snap["poems"],
                                "restarts": snap["health"][3], "rss_mb": rss, "scene": snap["scene"][1],
                                "open": not self.closed, "next_change": nxt, "next_at": snap.get("next_at"), "setlist": self.setlist.file,
                                "errors": list(self.engine.errors)[-5:] + self.errors[-5:], "pid": os.getpid()})

    def _shutdown(self) -> None:
        now = self.clock.now()
        if self.args.duration is not None:
            now = min(now, self.args.duration)
        try:
            self._route(self.engine.end(now))
        except Exception:
            log.exception("ending the session failed")
        first = None
        if self.engine.first_token_t is not None:
            # first_token_s is real time from process start to the first token on the stage
            first = self.clock.real_seconds(self.engine.first_token_t) + (self.clock._t0 - STARTED)
        if self.args.screenshot and self.screen is not None:
            import pygame

            self.args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            pygame.image.save(self.screen, str(self.args.screenshot))
            if self.monitor is not None and not self.monitor.closed:  # beside it: NAME.monitor.png
                pygame.image.save(self.monitor.window.get_surface(),
                                  str(self.args.screenshot.with_suffix(".monitor" + self.args.screenshot.suffix)))
        # sound first: the recorder muxes the finished audio mix into the video
        for closer in (getattr(self.sound, "close", None),
                       (lambda: self.recorder.close(now)) if self.recorder is not None else None,
                       getattr(self.advertiser, "stop", None),
                       getattr(self.osc, "stop", None), getattr(self.controllers, "stop", None),
                       getattr(self.operator, "stop", None)):
            if closer:
                try:
                    closer()
                except Exception:
                    log.exception("shutdown step failed")
        if self.operator is not None:  # the table is gone: log lines may reach the terminal again
            from performance.install.logs import replace_console

            replace_console(None, self._console_handlers)
        if self.args.stats_json:
            summary = self.stats.summary(self.size[0], self.size[1], first)
            if self.monitor is not None:
                summary["monitor_redraws"] = self.monitor.redraws
            if getattr(self, "engine", None) is not None:  # timed OSC commands refused (bounded queue)
                summary["timed_commands_dropped"] = sum(self.engine.waiting.dropped.values())
            if self.recorder is not None:
                summary["recorder_dropped"] = self.recorder.dropped
                summary["recorder_frames"] = self.recorder.frames_written
            self.args.stats_json.parent.mkdir(parents=True, exist_ok=True)
            self.args.stats_json.write_text(json.dumps(summary, indent=1))
        self.worker.stop()
        self.transcript.close()
        if self.window is not None:
            import pygame

            self.window.close()
            pygame.quit()
        if self.terminal:
            sys.stdout.write("\n")


def _timetable(setlist):
    """The setlist's [[at]] timetable in the installation's zone (the machine's without [install])."""
    if not setlist.timetable:
        return None
    from performance.show.hours import local_zone
    from performance.show.timetable import Timetable

    return Timetable(setlist.timetable, setlist.install.zone() if setlist.install else local_zone())


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError):
        return 0.0


_ = threading  # threads are owned by the services started above
