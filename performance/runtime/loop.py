"""The frame loop: input → `engine.step` → route → draw → present → publish → wait (60 fps).

SDL wants the main thread; everything slow lives on its owner's thread or process, so a frame
only moves messages, folds events into the stage and draws. Deadlines advance by the frame period
(no drift); after a stall the loop starts afresh rather than racing to catch up.
"""

from __future__ import annotations

import faulthandler
import logging
import queue
import signal
import time

from performance import faults
from performance.protocol.actions import SpeechStarted, SpeechState
from performance.protocol.commands import Command
from performance.protocol.worker import TokenOut
from performance.runtime.router import PLANNED_RESTART
from performance.runtime.session import Session
from performance.runtime.stats import FPS

log = logging.getLogger("lectern.play")
WORKER_MESSAGES_PER_FRAME = 20_000
SHUTDOWN_GRACE_S = 25.0  # closing (transcript, recording mux, worker, sound) gets this long before a forced end


class FrameLoop:
    """Runs one session to its end; returns the process's exit code."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.awaiting_tokens = False  # from the last step's Outbox (the watchdog reads it)
        self.started_wall = None
        self._display_fault_done = False

    def run(self) -> int:
        s = self.s
        s.open()
        own_ctrl_c()
        s.router.route(s.engine.start(s.clock.now()))
        self.started_wall = s.clock.wall()
        frame_s, next_deadline, last_second = 1.0 / FPS, time.monotonic(), 0.0
        try:
            while not s.quit_requested:
                if not self.frame(time.perf_counter()):
                    break
                if time.monotonic() - last_second >= 1.0:
                    last_second = time.monotonic()
                    if not self.once_a_second():
                        break
                next_deadline += frame_s
                delay = next_deadline - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -frame_s:
                    next_deadline = time.monotonic()
        except KeyboardInterrupt:
            pass
        finally:
            # a quit must end the process: if closing hangs (a device, a server, a thread that will not
            # stop), every thread's stack goes to stderr, saying which, and the process ends
            faulthandler.dump_traceback_later(SHUTDOWN_GRACE_S, exit=True)
            now = s.clock.now()
            try:
                s.close(min(now, s.args.duration) if s.args.duration is not None else now)
            finally:
                faulthandler.cancel_dump_traceback_later()
        return s.exit_code

    def frame(self, work_t0: float) -> bool:
        """One frame; False when the session ends here."""
        s = self.s
        now = s.clock.now()
        if s.args.duration is not None and now >= s.args.duration:
            return False
        inbox = self.gather(now)
        if s.quit_requested:
            return False
        out = s.engine.step(now, inbox)
        self.awaiting_tokens = out.awaiting_tokens
        s.stats.awaiting_frames += out.awaiting_tokens  # the reveal waited for the model this frame
        s.router.route(out)
        s.display.draw(now)
        if s.engine.state == "ended" and not s.engine.setlist.loop:  # the engine's: a reload may change it
            return False
        work = time.perf_counter() - work_t0
        s.display.present()
        presented = time.monotonic()
        if s.cadence.due(presented):  # on change at most once a frame, and at least once a second
            s.publish()
        # after the stage's present: the audience's frame is never late for the monitor
        work += s.display.monitor_frame(s.snapshot, s.clock.wall())
        s.stats.frame(work, presented, speaking=s.sound is not None and s.sound.speaking())
        self._latencies(inbox, presented)
        self._reveal_lag(out.events, s.clock.now())
        if s.recorder is not None and s.display.screen is not None:
            s.recorder.frame(s.display.screen, now, changed=s.display.frame_changed)
        if s.heartbeat is not None:
            s.heartbeat.beat()
        return True

    def gather(self, now: float) -> list:
        """Everything the engine should see this frame, as messages in one list."""
        s = self.s
        s.controllers.poll(now, s.display.events())  # the keyboard and the schedule, on this thread
        inbox = s.router.split(now, s.inbox.drain())
        restarted = s.watchdog.check(self.awaiting_tokens)
        if restarted is not None:
            inbox.append(restarted)
        got = 0
        wq = s.worker.outbox
        for _ in range(WORKER_MESSAGES_PER_FRAME):
            try:
                msg = wq.get_nowait()
                inbox.append(msg)
                got += 1
                s.stats.tokens_received += isinstance(msg, TokenOut)  # what the model delivered (bench_show.py)
            except queue.Empty:
                break
        s.watchdog.heard(got > 0, self.awaiting_tokens)
        if s.sound is not None:
            for ev in s.sound.poll():
                inbox.append(SpeechStarted(ev.poem, ev.line, ev.start, ev.end, ev.words, ev.engine, ev.voice))
            inbox.append(SpeechState(s.sound.speaking(), s.sound.speech_backlog()))
        return inbox

    def _latencies(self, inbox: list, presented: float) -> None:
        """A controller's message → the first presented frame that shows its effect."""
        stats = self.s.stats
        for cmd in inbox:
            received = getattr(cmd, "received", None) if isinstance(cmd, Command) else None
            if received is None:
                continue
            lat = stats.osc_latency_ms if cmd.source == "osc" else stats.latency_ms.setdefault(cmd.source, [])
            if len(lat) < 100_000:
                lat.append((presented - received) * 1000)

    def _reveal_lag(self, events: list, shown: float) -> None:
        """A word's time in the transcript (its beat, its deadline) → the present of the frame that shows
        it: --stats-json reveal_latency_ms (bench/bench_link_tempo.py)."""
        for ev in events:
            if ev["event"] == "token":
                lag = self.s.stats.latency_ms.setdefault("reveal", [])
                if len(lag) < 100_000:
                    lag.append((shown - ev["t"]) * 1000 / self.s.clock.time_scale)

    def once_a_second(self) -> bool:
        """Hours' daily restart, fault injection, displays plugged or unplugged; False to end."""
        s = self.s
        hours = s.setlist.install
        if hours is not None and s.args.install and hours.restart_due(self.started_wall, s.clock.wall()):
            log.warning("daily restart")
            s.exit_code = PLANNED_RESTART
            return False
        if not self._display_fault_done and faults.active("display_changed"):
            self._display_fault_done = True
            if s.display.window is not None:  # fault injection: as if the screens had changed
                s.display.window._desktops = []
        s.display.displays_changed()
        return True


def own_ctrl_c() -> None:
    """Ctrl+C (SIGINT) ends the show, whatever a library opened on the way did to it: SDL takes the
    signal for its own quit event, and a JACK client (the MIDI controller, where a JACK server has
    run) can leave it blocked; seen as a show that ran on after SIGINT in the test suite. Called
    once everything is open, on the main thread."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        log.debug("SIGINT was taken by a library (%r); the show takes it back", signal.getsignal(signal.SIGINT))
        signal.signal(signal.SIGINT, signal.default_int_handler)
