"""The supervisor: runs the engine as a child, restarts it after a crash or a hang, backs off, and
falls back to a safe setlist after repeated crashes.

`run.py play SETLIST --install` (or `run.py supervise SETLIST ...`) starts it. The child beats into a
heartbeat file; a child that stops beating for `hang_s` is killed. Exit code 75 from the child is a
planned restart (the daily restart time), not a crash.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from performance.install.sdnotify import notify

log = logging.getLogger("lectern.supervisor")
ROOT = Path(__file__).resolve().parents[2]
PLANNED_RESTART = 75


def backoff(n: int, cap: float = 60.0) -> float:
    """Seconds to wait before restart number n (1, 2, 4, ... capped)."""
    return min(cap, 2.0 ** max(0, n - 1))


def _safe_setlist(argv: list[str]) -> list[str]:
    """The same command line with the setlist replaced by its safe fallback."""
    safe = "setlists/safe.toml"
    try:
        from performance.show.config import load_setlist

        setlist = next(a for a in argv if a.endswith(".toml"))
        install = load_setlist(setlist).install
        if install is not None and install.safe_setlist:
            safe = install.safe_setlist
    except Exception:
        pass
    out, replaced = [], False
    for a in argv:
        if a.endswith(".toml") and not replaced:
            out.append(safe)
            replaced = True
        else:
            out.append(a)
    return out


def supervise(argv: list[str], *, child: list[str] | None = None, hang_s: float = 20.0, grace_s: float = 30.0,
              max_crashes: int = 5, window_s: float = 600.0, stable_s: float = 300.0,
              max_restarts: int | None = None, sleep=time.sleep) -> int:
    """Run and watch the engine. `child` replaces the engine's command line (tests use tiny children).
    Returns the child's final exit code when it ends normally (0), else keeps restarting."""
    play_argv = [a for a in argv if a not in ("--supervised",)]
    if play_argv and play_argv[0] == "supervise":
        play_argv = ["play", *play_argv[1:]]
    if play_argv and play_argv[0] != "play":
        play_argv = ["play", *play_argv]
    if "--install" not in play_argv:
        play_argv.append("--install")
    state_dir = Path(tempfile.mkdtemp(prefix="lectern-supervisor-"))
    heartbeat = state_dir / "heartbeat"
    crashes: deque[float] = deque()
    restarts, safe = 0, False
    stop = {"sig": None}

    def forward(sig, _frame):
        stop["sig"] = sig

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    notify("READY=1")
    try:
        while True:
            cmd = child or [sys.executable, str(ROOT / "run.py"), *(_safe_setlist(play_argv) if safe else play_argv),
                            "--supervised"]
            env = {**os.environ, "LECTERN_HEARTBEAT": str(heartbeat), "LECTERN_RESTARTS": str(restarts),
                   "LECTERN_SUPERVISED": "1"}
            heartbeat.unlink(missing_ok=True)
            started = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
            log.warning("engine started (pid %d)%s", proc.pid, " on the safe setlist" if safe else "")
            reason = None
            while True:
                code = proc.poll()
                if code is not None:
                    break
                if stop["sig"] is not None:
                    proc.send_signal(stop["sig"])
                    try:
                        return proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        return 1
                notify("WATCHDOG=1")
                age = time.time() - heartbeat.stat().st_mtime if heartbeat.exists() else None
                alive_for = time.monotonic() - started
                if (age is None and alive_for > grace_s) or (age is not None and age > hang_s):
                    reason = "hung (no heartbeat)"
                    log.error("engine %s; killing it", reason)
                    proc.kill()
                    proc.wait()
                    code = -9
                    break
                time.sleep(0.2)
            if code == 0 and reason is None:
                return 0
            restarts += 1
            if code == PLANNED_RESTART:
                log.warning("planned restart")
                continue
            now = time.monotonic()
            if now - started > stable_s:
                crashes.clear()  # it ran well for a while: start counting afresh
            crashes.append(now)
            while crashes and now - crashes[0] > window_s:
                crashes.popleft()
            if len(crashes) >= max_crashes and not safe:
                safe = True
                log.error("%d crashes in %.0f s: falling back to the safe setlist", len(crashes), window_s)
            wait = backoff(len(crashes))
            log.error("engine %s (exit %s); restart %d in %.0f s", reason or "crashed", code, restarts, wait)
            if max_restarts is not None and restarts >= max_restarts:
                return 1
            sleep(wait)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def register_supervise(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("supervise", help="run a setlist under the supervisor (what --install does)",
                       description="Run `play SETLIST --install ...` under a supervisor that restarts it after a "
                                   "crash or hang, with backoff, and falls back to a safe setlist.")
    p.add_argument("setlist")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="more play options")
    p.set_defaults(func=lambda a: supervise(["play", a.setlist, *a.rest]))
