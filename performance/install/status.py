"""The status file a technician reads with `run.py status`.

The engine calls `StatusWriter.update(fields)` once a second from the frame loop; that only swaps a
reference. A thread of the writer's own writes the latest fields as JSON, atomically (tmp + rename,
so a reader never sees half a file), and pauses on a full disk. The supervisor writes its own small
file beside it (supervisor.json), so the status also tells "restarting in 30 s after a crash".
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

from performance.install.diskguard import DiskGuard
from performance.protocol.snapshot import Snapshot

STALE_S = 10.0  # the engine writes every second; this much silence means it is not running
STATE_ENV = "LECTERN_STATE_DIR"
SUPERVISOR_FILE = "supervisor.json"


def state_dir() -> Path:
    """Where status, supervisor state and (by default) logs live: $LECTERN_STATE_DIR or sessions/."""
    return Path(os.environ.get(STATE_ENV, "sessions"))


def default_path() -> Path:
    """The default status file."""
    return state_dir() / "status.json"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to path via a temporary file and rename; raises OSError (the tmp file is removed)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1, default=str))
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)  # a half-written file only takes more of a full disk
        except OSError:
            pass
        raise


class StatusWriter:
    """Writes the latest status fields to `path` on its own thread."""

    def __init__(self, path: Path, *, retry_s: float = 10.0) -> None:
        self.path = Path(path)
        self.writes = 0
        self.guard = DiskGuard(retry_s=retry_s, what=f"status file {self.path}")
        self._latest: dict | None = None
        self._closing = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lectern-status", daemon=True)
        self._thread.start()

    def update(self, fields: dict) -> None:
        """Hand over the latest fields (uptime_s, fps, poems, restarts, rss_mb, scene, open,
        next_change, errors, ...). Returns at once; an older value not yet written is replaced."""
        data = {**fields, "written": time.time()}
        data.setdefault("pid", os.getpid())
        with self._lock:
            self._latest = data
        self._wake.set()

    def publish(self, snap: Snapshot) -> None:
        """status.json from the state Snapshot (the publisher calls it; never the Engine)."""
        uptime, fps, _, restarts, rss = snap.health
        self.update({"uptime_s": uptime, "fps": fps, "poems": snap.poems, "restarts": restarts, "rss_mb": rss,
                     "scene": snap.scene[1], "open": snap.open, "next_change": snap.next_change,
                     "next_at": list(snap.next_at) or None, "setlist": snap.setlist,
                     "errors": list(snap.errors)[-5:] + list(snap.warnings)[-5:], "pid": os.getpid()})

    def close(self, timeout: float = 2.0) -> None:
        """Write the last fields once more marked "stopped" (a clean end, not a crash) and end the thread."""
        with self._lock:
            if self._latest is not None:
                self._latest = {**self._latest, "stopped": True, "written": time.time()}
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                data, self._latest, closing = self._latest, None, self._closing
            if data is not None and (self.guard.ok_to_write() or closing):
                try:
                    write_json_atomic(self.path, data)
                    self.writes += 1
                    self.guard.note_ok()
                except OSError as e:
                    self.guard.note_error(e)
            if closing:
                return


def _age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def describe(data: dict, now: float | None = None, supervisor: dict | None = None) -> str:
    """The status as a few lines for a technician (no Python knowledge needed)."""
    now = time.time() if now is None else now
    written = float(data.get("written", 0))
    age = now - written
    sup_stopped = bool(supervisor and supervisor.get("state") == "stopped"
                       and float(supervisor.get("written", 0)) >= written - 1)
    if data.get("stopped") or sup_stopped:
        head = f"STOPPED (ended cleanly at {_clock(written)})"
    elif age < STALE_S:
        head = "running"
    else:
        head = f"NOT RUNNING (last heard {_age_text(age)} ago, at {_clock(written)})"
    is_open = data.get("open")
    lines = [f"Lectern installation: {head}",
             f"  setlist     {data.get('setlist')}",
             f"  scene       {data.get('scene')}",
             f"  open        {'yes' if is_open else 'no (closed hours)'}; next change "
             f"{data.get('next_change') or 'none (no opening hours set)'}",
             f"  uptime      {float(data.get('uptime_s') or 0) / 3600:.2f} h",
             f"  fps         {data.get('fps')}",
             f"  poems shown {data.get('poems')}",
             f"  restarts    {data.get('restarts')}",
             f"  memory      {data.get('rss_mb')} MB"]
    errors = data.get("errors") or []
    if errors:
        lines.append("  recent errors:")
        lines += [f"    {e}" for e in errors]
    if supervisor:
        lines.append(describe_supervisor(supervisor, now))
    return "\n".join(lines)


def describe_supervisor(sup: dict, now: float | None = None) -> str:
    """One line about the supervisor: how often it restarted the engine, what it does now."""
    now = time.time() if now is None else now
    state = sup.get("state")
    line = f"  supervisor  {sup.get('restarts', 0)} restarts"
    if sup.get("safe"):
        line += "; playing the SAFE setlist after repeated crashes"
    if sup.get("last_exit") is not None:
        line += f"; last end: {sup.get('last_reason') or 'exit'} ({sup.get('last_exit')})"
    if state == "waiting":
        line += f"; restarting in {max(0.0, float(sup.get('next_start', now)) - now):.0f} s"
    elif state == "stopped":
        line += "; stopped"
    return line


def register_status(sub: argparse._SubParsersAction) -> None:
    """Add `run.py status [--file PATH] [--json]`."""
    p = sub.add_parser("status", help="health of a running installation",
                       description="Print the health of a running installation from its status file. "
                                   "Exit code 0 when it is running, 1 when not (or no status found).")
    p.add_argument("--file", type=Path, default=None,
                   help="status file (default $LECTERN_STATE_DIR/status.json, else sessions/status.json)")
    p.add_argument("--json", action="store_true", help="print the status file's JSON as it is")
    p.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    """Handler of `run.py status`."""
    path = args.file or default_path()
    sup = None
    try:
        sup = json.loads((path.parent / SUPERVISOR_FILE).read_text())
    except (OSError, ValueError):
        pass
    if not path.exists():
        print(f"no installation status at {path}: nothing has run here with --install "
              f"(or set --file / {STATE_ENV})")
        if sup:
            print(describe_supervisor(sup))
        return 1
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        print(f"{path}: unreadable status file ({e})")
        return 1
    if getattr(args, "json", False):
        print(json.dumps(data, indent=1))
    else:
        print(describe(data, supervisor=sup))
    running = "Lectern installation: running" in describe(data, supervisor=sup)
    return 0 if running else 1
