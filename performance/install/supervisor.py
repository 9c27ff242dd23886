"""The supervisor: runs the engine as a child process and keeps it running for weeks.

`run.py play SETLIST --install` (or `run.py supervise SETLIST ...`) starts it. It runs
`run.py play SETLIST --install --supervised ...` as a child in a process group of its own and

- watches the child's heartbeat file (LECTERN_HEARTBEAT): a child that has not beaten for `hang_s`
  (or not at all within `grace_s` of starting) is hung and killed, with its whole process group, so
  no speech or model worker is left behind;
- restarts it after a crash or a hang, waiting 1, 2, 4 ... 60 s (the count of crashes in the last
  `window_s`; a run that lasted `stable_s` starts the count afresh);
- after `max_crashes` crashes within `window_s`, plays the setlist's `safe_setlist` (default
  setlists/safe.toml) instead; after `retry_real_s` on it (the fault may have been passing: a
  device, a full disk), or at a planned restart (exit 75, the daily restart), it tries the real
  setlist again;
- passes the restart count to the child (LECTERN_RESTARTS) for the status file and OSC health;
- on SIGTERM/SIGINT asks the child to end cleanly (as SIGINT: the engine closes its transcript as
  after Ctrl+C), kills what is left after `stop_timeout_s`, and returns;
- tells systemd READY=1 and WATCHDOG=1 when run by it (the unit's NotifyAccess=all also lets the
  child's own pings through);
- writes supervisor.json beside the status file, so `run.py status` can say what it is doing.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import logging.handlers
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from performance.install.logs import setup_logging
from performance.install.sdnotify import notify
from performance.install.status import STATE_ENV, SUPERVISOR_FILE, write_json_atomic

log = logging.getLogger("lectern.supervisor")
ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "run.py"
PLANNED_RESTART = 75  # the engine's exit code for "restart me now" (daily restart): not a crash
SAFE_DEFAULT = "setlists/safe.toml"
RESTARTS_ENV = "LECTERN_RESTARTS"
SUPERVISED_ENV = "LECTERN_SUPERVISED"
HEARTBEAT_ENV = "LECTERN_HEARTBEAT"
WATCHDOG_EVERY_S = 1.0
RETRY_REAL = "retrying the real setlist"
STILL = "builtin:still"  # when the safe setlist fails too: the built-in still screen (performance/install/still.py)


def backoff(n: int, cap: float = 60.0) -> float:
    """Seconds to wait before restarting after the n-th recent crash: 1, 2, 4, ... capped at `cap`."""
    return min(cap, 2.0 ** max(0, n - 1))


def play_command(argv: list[str]) -> list[str]:
    """The child's `run.py` arguments: `play SETLIST ... --install`, whichever way we were called."""
    out = [a for a in argv if a != "--supervised"]
    if out and out[0] == "supervise":
        out = out[1:]
    if not out or out[0] != "play":
        out = ["play", *out]
    if "--install" not in out:
        out.append("--install")
    return out


def _setlist_index(play_argv: list[str]) -> int | None:
    """Where the SETLIST argument is: the first word after `play` that is neither an option nor the
    value of one. Which options take a value is read from play's own parser, never guessed."""
    takes_value = _options_with_values()
    i = 1
    while i < len(play_argv):
        a = play_argv[i]
        if a in takes_value:
            i += 2
            continue
        if not a.startswith("-"):
            return i
        i += 1
    return None


def _options_with_values() -> set[str]:
    """Every option string of `run.py play` that takes a value (from the parser that play uses)."""
    # lazy: `run.py --help` imports this module; what the command needs loads when it runs
    from performance.runtime.args import add_play_arguments

    p = argparse.ArgumentParser(add_help=False)
    add_play_arguments(p)
    return {o for a in p._actions if a.option_strings and a.nargs != 0 for o in a.option_strings}


def _option(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def safe_setlist_for(setlist: str) -> str:
    """The setlist's [install] safe_setlist, or setlists/safe.toml (also when the setlist is broken)."""
    try:
        # lazy: `run.py --help` imports this module; what the command needs loads when it runs
        from performance.show.config import load_setlist

        install = load_setlist(setlist).install
        if install is not None and install.safe_setlist:
            return install.safe_setlist
    except Exception as e:  # a broken setlist is the likeliest reason we need the safe one
        log.warning("reading %s for its safe_setlist failed (%s); using %s", setlist, e, SAFE_DEFAULT)
    return str(ROOT / SAFE_DEFAULT) if not Path(SAFE_DEFAULT).exists() else SAFE_DEFAULT


def with_setlist(play_argv: list[str], setlist: str) -> list[str]:
    """The same command line with another setlist."""
    i = _setlist_index(play_argv)
    out = list(play_argv)
    if i is None:
        out.insert(1, setlist)
    else:
        out[i] = setlist
    return out


def _setup_supervisor_log(log_dir: Path) -> None:
    """The supervisor's own rotating file (the engine rotates lectern.log; two writers of one
    rotating file would rename it under each other)."""
    root = logging.getLogger()
    if not any(getattr(h, "_lectern_handler", False) for h in root.handlers):
        setup_logging(None, quiet=True)
    for h in [h for h in log.handlers if getattr(h, "_lectern_handler", False)]:
        log.removeHandler(h)  # a second supervise() in one process replaces, not doubles, its file
        h.close()
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(log_dir / "supervisor.log", maxBytes=1_000_000, backupCount=3,
                                                  encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh._lectern_handler = True  # type: ignore[attr-defined]
        log.addHandler(fh)
    except OSError as e:
        log.error("cannot write the supervisor log in %s: %s", log_dir, e)


def _die_with_parent() -> None:
    """In the child before exec: end (as after Ctrl+C) if the supervisor dies, even by SIGKILL, so an
    engine never plays on unsupervised beside the next supervisor's. Linux only; elsewhere a no-op."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGINT))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (the child leads it: start_new_session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Supervisor:
    """State of one supervise() call; see the module docstring."""

    def __init__(self, argv: list[str], child: list[str] | None, state_dir: Path | None, hang_s: float,
                 grace_s: float, max_crashes: int, window_s: float, stable_s: float, stop_timeout_s: float,
                 max_restarts: int | None, sleep: Callable[[float], object] | None, poll_s: float,
                 retry_real_s: float) -> None:
        self.play_argv = play_command(argv)
        self.child = child
        self.hang_s, self.grace_s, self.poll_s = hang_s, grace_s, poll_s
        self.max_crashes, self.window_s, self.stable_s = max_crashes, window_s, stable_s
        self.stop_timeout_s, self.max_restarts = stop_timeout_s, max_restarts
        self.retry_real_s = retry_real_s
        self.state_dir = state_dir
        self.stop_event = threading.Event()
        self.stop_signal: int | None = None
        self.sleep = sleep or self.stop_event.wait  # a stop ends the wait at once
        self.restarts = 0
        self.safe = False
        self.still = False
        self.safe_crashes = 0
        self.crashes: deque[float] = deque()
        self.last_exit: int | None = None
        self.last_reason: str | None = None
        self.last_watchdog = 0.0
        self.beat_dir = Path(tempfile.mkdtemp(prefix="lectern-supervisor-"))
        self.heartbeat = self.beat_dir / "heartbeat"

    # -- one child -------------------------------------------------------------------------------
    def setlist(self) -> str:
        """The setlist the next child plays: the given one, or its safe fallback."""
        i = _setlist_index(self.play_argv)
        main = self.play_argv[i] if i is not None else "setlists/demo.toml"
        if self.still:
            return STILL
        return safe_setlist_for(main) if self.safe else main

    def command(self) -> list[str]:
        setlist = self.setlist()
        if self.child is not None:  # tests: "{setlist}" in a tiny child's argv says which one it got
            return [a.replace("{setlist}", setlist) for a in self.child]
        if setlist == STILL:
            return [sys.executable, "-m", "performance.install.still", *self.play_argv[1:]]
        return [sys.executable, str(RUN_PY), *with_setlist(self.play_argv, setlist), "--supervised"]

    def run_child(self) -> tuple[int, str | None]:
        """Start the child and watch it until it ends. Returns (exit code, why it was killed or None)."""
        env = {**os.environ, HEARTBEAT_ENV: str(self.heartbeat), RESTARTS_ENV: str(self.restarts),
               SUPERVISED_ENV: "1"}
        self.heartbeat.unlink(missing_ok=True)
        cmd = self.command()
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent)
        started = last_beat = time.monotonic()
        beat_seen: int | None = None
        log.warning("engine started (pid %d, restart %d)%s", proc.pid, self.restarts,
                    " on the SAFE setlist" if self.safe else "")
        self.write_state("running", child_pid=proc.pid)
        try:
            while True:
                code = proc.poll()
                if code is not None:
                    return code, None
                if self.stop_signal is not None:
                    return self.stop_child(proc), "stopped"
                now = time.monotonic()
                if (self.safe or self.still) and now - started > self.retry_real_s:
                    log.warning("%.0f s on the safe setlist: %s", now - started, RETRY_REAL)
                    return self.stop_child(proc), RETRY_REAL
                self.ping_watchdog(now)
                try:
                    mtime = self.heartbeat.stat().st_mtime_ns
                except OSError:
                    mtime = None
                if mtime is not None and mtime != beat_seen:  # judged by our monotonic clock, not
                    beat_seen, last_beat = mtime, now        # the file's time: NTP steps can't kill it
                if (beat_seen is None and now - started > self.grace_s) or \
                        (beat_seen is not None and now - last_beat > self.hang_s):
                    waited = now - (started if beat_seen is None else last_beat)
                    reason = f"hung (no heartbeat for {waited:.0f} s)"
                    log.error("engine %s; killing it", reason)
                    _kill_group(proc)
                    proc.wait()
                    return proc.returncode, reason
                self.stop_event.wait(self.poll_s)
        finally:
            _kill_group(proc)  # anything the child left behind (workers of a crashed engine)

    def stop_child(self, proc: subprocess.Popen) -> int:
        """Ask the child to end as after Ctrl+C; kill its group if it does not in time."""
        try:
            proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.error("engine did not stop within %.0f s; killing it", self.stop_timeout_s)
            _kill_group(proc)
            proc.wait()
            return proc.returncode

    def ping_watchdog(self, now: float) -> None:
        if now - self.last_watchdog >= WATCHDOG_EVERY_S:
            self.last_watchdog = now
            notify("WATCHDOG=1")

    def write_state(self, state: str, **extra: object) -> None:
        if self.state_dir is None:
            return
        data = {"pid": os.getpid(), "state": state, "restarts": self.restarts, "safe": self.safe, "still": self.still,
                "last_exit": self.last_exit, "last_reason": self.last_reason, "written": time.time(), **extra}
        try:
            write_json_atomic(self.state_dir / SUPERVISOR_FILE, data)
        except OSError:
            pass  # a full disk: the status is a courtesy, the show matters

    # -- the loop --------------------------------------------------------------------------------
    def loop(self) -> int:
        notify("READY=1")
        while True:
            run_started = time.monotonic()
            code, reason = self.run_child()
            self.last_exit, self.last_reason = code, reason
            if self.stop_signal is not None:
                log.warning("stopped by signal %d; engine ended with %s", self.stop_signal, code)
                self.write_state("stopped")
                return 1 if code == -signal.SIGKILL else 0  # 1: it had to be killed
            if code == 0 and reason is None:
                log.warning("engine ended normally")
                self.write_state("stopped")
                return 0
            self.restarts += 1
            if (code == PLANNED_RESTART and reason is None) or reason == RETRY_REAL:
                log.warning("planned restart (%s); restart %d", reason or "daily restart time", self.restarts)
                self.crashes.clear()
                if self.safe:
                    log.warning("trying the real setlist again")
                self.safe = self.still = False
                self.safe_crashes = 0
                continue
            now = time.monotonic()
            if now - run_started > self.stable_s:
                self.crashes.clear()  # it ran well for a while: count afresh
            self.crashes.append(now)
            while self.crashes and now - self.crashes[0] > self.window_s:
                self.crashes.popleft()
            if self.safe and not self.still:
                self.safe_crashes += 1
                if self.safe_crashes >= self.max_crashes:
                    self.still = True
                    log.error("the safe setlist crashed %d times too: showing the built-in still screen",
                              self.safe_crashes)
            if len(self.crashes) >= self.max_crashes and not self.safe:
                self.safe = True
                log.error("%d crashes within %.0f s: falling back to the safe setlist", len(self.crashes),
                          self.window_s)
            wait = backoff(len(self.crashes))
            log.error("engine %s (exit %s); restart %d in %.0f s", reason or "crashed", code, self.restarts, wait)
            if self.max_restarts is not None and self.restarts >= self.max_restarts:
                self.write_state("stopped")
                return 1
            self.write_state("waiting", next_start=time.time() + wait)
            self.sleep(wait)
            if self.stop_signal is not None:
                self.write_state("stopped")
                return 0

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum
        self.stop_event.set()


def supervise(argv: list[str], *, child: list[str] | None = None, state_dir: Path | None = None,
              hang_s: float = 20.0, grace_s: float = 60.0, max_crashes: int = 5, window_s: float = 600.0,
              stable_s: float = 300.0, stop_timeout_s: float = 15.0, max_restarts: int | None = None,
              sleep: Callable[[float], object] | None = None, poll_s: float = 0.2,
              retry_real_s: float = 3600.0) -> int:
    """Run `run.py play ... --install --supervised` (argv as given to `run.py`, e.g. ["play",
    "setlists/gallery.toml", "--install"]) under supervision until it ends normally (0), a signal
    stops it, or `max_restarts` is reached (1; for tests). `child` replaces the engine's command line
    (tests use tiny `python -c` children; "{setlist}" in it becomes the setlist of that run, the
    given one or the safe one); `sleep` replaces the backoff wait (tests record it).
    `state_dir` (default $LECTERN_STATE_DIR, else the --transcript-dir, else sessions/; None for
    tests with `child`) receives supervisor.json and logs/supervisor.log."""
    if state_dir is None and child is None:
        state_dir = Path(os.environ.get(STATE_ENV) or _option(argv, "--transcript-dir") or "sessions")
        _setup_supervisor_log(Path(_option(argv, "--transcript-dir") or "sessions") / "logs")
    sup = _Supervisor(argv, child, state_dir, hang_s, grace_s, max_crashes, window_s, stable_s, stop_timeout_s,
                      max_restarts, sleep, poll_s, retry_real_s)
    in_main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, sup.on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        return sup.loop()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        shutil.rmtree(sup.beat_dir, ignore_errors=True)


def register_supervise(sub: argparse._SubParsersAction) -> None:
    """Add `run.py supervise [options] SETLIST [play options...]`."""
    p = sub.add_parser("supervise", help="run a setlist under the supervisor (what play --install does)",
                       description="Run `play SETLIST --install ...` under a supervisor that restarts it after a "
                                   "crash or a hang, with backoff, and falls back to a safe setlist after repeated "
                                   "crashes. Supervisor options go before SETLIST; everything after it goes to play.")
    p.add_argument("--hang-s", type=float, default=20.0, help="kill the engine after this long without a heartbeat")
    p.add_argument("--grace-s", type=float, default=60.0, help="time allowed before the first heartbeat (start-up)")
    p.add_argument("--max-crashes", type=int, default=5, help="crashes within --window-s before the safe setlist")
    p.add_argument("--window-s", type=float, default=600.0, help="window for counting crashes")
    p.add_argument("setlist")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="more play options")
    p.set_defaults(func=run_supervise)


def run_supervise(args: argparse.Namespace) -> int:
    """Handler of `run.py supervise`."""
    if args.hang_s <= 0 or args.grace_s <= 0 or args.max_crashes < 1 or args.window_s <= 0:
        print("supervise: --hang-s, --grace-s, --window-s must be > 0 and --max-crashes >= 1", file=sys.stderr)
        return 2
    return supervise(["play", args.setlist, *args.rest], hang_s=args.hang_s, grace_s=args.grace_s,
                     max_crashes=args.max_crashes, window_s=args.window_s)
