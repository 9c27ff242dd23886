"""The status file a technician reads with `run.py status`; written atomically on its own thread."""

from __future__ import annotations

import argparse
import json
import os
import queue
import threading
import time
from pathlib import Path

from performance.install.diskguard import DiskGuard

STALE_S = 10.0


def default_path() -> Path:
    return Path(os.environ.get("LECTERN_STATE_DIR", "sessions")) / "status.json"


class StatusWriter:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._q: queue.Queue = queue.Queue(maxsize=4)
        self._guard = DiskGuard(retry_s=10)
        self._thread = threading.Thread(target=self._run, name="lectern-status", daemon=True)
        self._thread.start()

    def update(self, fields: dict) -> None:
        try:
            self._q.put_nowait({**fields, "written": time.time()})
        except queue.Full:
            pass

    def _run(self) -> None:
        while True:
            data = self._q.get()
            if not self._guard.ok_to_write():
                continue
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, indent=1, default=str))
                os.replace(tmp, self.path)
            except OSError as e:
                self._guard.note_error(e)


def describe(data: dict, now: float | None = None) -> str:
    now = now or time.time()
    age = now - float(data.get("written", 0))
    head = "running" if age < STALE_S else f"NOT RUNNING (last heard {age / 60:.1f} min ago)"
    lines = [f"Lectern installation: {head}",
             f"  setlist     {data.get('setlist')}",
             f"  scene       {data.get('scene')}",
             f"  open        {'yes' if data.get('open') else 'no (closed hours)'}; next change {data.get('next_change')}",
             f"  uptime      {float(data.get('uptime_s', 0)) / 3600:.2f} h",
             f"  fps         {data.get('fps')}",
             f"  poems shown {data.get('poems')}",
             f"  restarts    {data.get('restarts')}",
             f"  memory      {data.get('rss_mb')} MB"]
    errors = data.get("errors") or []
    if errors:
        lines.append("  recent errors:")
        lines += [f"    {e}" for e in errors]
    return "\n".join(lines)


def register_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="health of a running installation",
                       description="Print the health of a running installation from its status file.")
    p.add_argument("--file", type=Path, default=None, help="status file (default $LECTERN_STATE_DIR or sessions/status.json)")
    p.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    path = args.file or default_path()
    if not path.exists():
        print(f"no installation status at {path}: is `run.py play SETLIST --install` running here?")
        return 1
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"{path}: unreadable status file ({e})")
        return 1
    print(describe(data))
    return 0 if time.time() - float(data.get("written", 0)) < STALE_S else 1
