"""The operator view: a live terminal panel (rich) beside the stage, on its own thread.

The frame loop hands it a snapshot about once a second; the view never touches engine state.
While it runs, log records do not go to the terminal as loose lines (they would scroll the table
away, about 15 a second in round 1): they go to the log file and to a few lines that the table
itself owns. Warnings that stay true (OSC could not listen, sound is off) are pinned in the table
until the session ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from performance.protocol.snapshot import Snapshot

STATE_LABELS = {"panic": "[bold red]PANIC[/] (GO resumes)", "waiting_go": "[yellow]waiting for GO[/]",
                "cue_wait": "[yellow]waiting[/] (GO starts the next cue now)",
                "ended": "ended", "idle": "starting", "playing": "playing"}

# rows shown when the state has them; reload_error: an edit on disk was refused (the running version goes on)
ROWS = (("reload_error", "[bold red]edit refused[/]"), ("reload", "reload"), ("midi", "MIDI"), ("learn", "MIDI learn"),
        ("remote", "remote"), ("audience", "audience words"))


class OperatorView:
    """Scene now and standing by, poem n of N, temperature, seed, model, tokens/s, fps, last commands,
    the latest log lines and the warnings that stay."""

    def __init__(self) -> None:
        self._snap: dict = {}
        self._cue = ""  # the next automatic start, in words (Snapshot.cue_text)
        self._commands: deque[str] = deque(maxlen=6)
        self._log: deque[str] = deque(maxlen=4)
        self._warnings: dict[str, None] = {}  # pinned, in order, without repeats
        self._pinned: dict[str, str] = {}  # label -> line: the ways in (the remote's token URL), for the operator only
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lectern-operator", daemon=True)
        self._tokens_prev = (time.monotonic(), 0)
        self._tok_s = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def update(self, snap: Snapshot, fps: float) -> None:
        """The latest state (from the publisher; the view never reads the Engine) and the frame rate."""
        t, n = time.monotonic(), snap.tokens
        t0, n0 = self._tokens_prev
        if t - t0 >= 0.5:
            self._tok_s = (n - n0) / (t - t0)
            self._tokens_prev = (t, n)
        self._snap = {**snap.to_dict(), "fps": fps, "tok_s": self._tok_s, "errors": list(snap.errors)[-3:]}
        self._cue = snap.cue_text()

    def command(self, line: str) -> None:
        self._commands.append(line)

    def pin(self, label: str, line: str) -> None:
        """A line that stays at the top for the session (never sent beyond this terminal)."""
        with self._lock:
            self._pinned[label] = line

    def warn(self, line: str) -> None:
        """A warning that stays on screen for the rest of the session."""
        with self._lock:
            self._warnings[line] = None

    def log_line(self, line: str) -> None:
        with self._lock:
            self._log.append(line)

    def handler(self, level: int = logging.INFO) -> logging.Handler:
        """A logging handler that writes into the table's own log lines."""
        return _ViewHandler(self, level)

    def table(self):
        """The panel as it is now (a rich Table)."""
        from rich.markup import escape  # lazy: rich loads only when the operator view opens
        from rich.table import Table

        s = self._snap
        t = Table(title="Lectern", show_header=False, expand=False)
        t.add_column(style="bold cyan")
        t.add_column()
        with self._lock:
            warnings, logs, pinned = list(self._warnings), list(self._log), dict(self._pinned)
        for label, line in pinned.items():
            t.add_row(label, escape(line))
        for w in warnings:
            t.add_row("[bold yellow]warning[/]", escape(w))
        if not s:
            t.add_row("state", "starting…")
        else:
            state = STATE_LABELS.get(s["state"], s["state"])
            if s.get("blackout"):
                state = "[bold red]BLACKOUT[/] (resume or p)"
            elif s.get("paused"):
                state = "[yellow]paused[/]"
            t.add_row("state", state)
            if s.get("notice"):
                t.add_row("[yellow]notice[/]", escape(s["notice"]))
            t.add_row("scene", escape(f"{s['scene'][0]} {s['scene'][1]}"))
            t.add_row("standing by", escape(f"{s['standby'][0]} {s['standby'][1]}") if s["standby"][0] else "—")
            running = s.get("running") or (0, "")
            t.add_row("running", escape(f"{running[0]} {running[1]}  ({s.get('continue_mode', '')})")
                      if running[0] else "—")
            if self._cue:
                t.add_row("[bold yellow]next cue[/]", escape(self._cue))
            n, of = s["poem"]
            t.add_row("poem", f"{n} of {of}" if of else str(n))
            over = " (override)" if s.get("override") is not None else ""
            t.add_row("temperature", f"{s['temperature']:.2f}{over}")
            t.add_row("seed", str(s["seed"]))
            model = s["model"] + (" (override)" if s.get("model_override") else "")
            t.add_row("model", escape(model))
            if s.get("prompt_override"):
                t.add_row("prompt", escape(f"{s['prompt_override'][:40]!r} (override)"))
            if s.get("neuron") is not None:
                t.add_row("x-ray unit", f"{s['neuron']}  (n / m: next / previous)")
            t.add_row("tokens/s · fps", f"{s['tok_s']:.0f} · {s['fps']:.1f}")
            if s.get("served"):  # a served model: up with its streaming rate, or down and who writes instead
                t.add_row("served", escape(s["served"]))
            t.add_row("voice · volume", f"{s['voice']} · {s['volume']:.2f}")
            for key, label in (ROWS[0], ROWS[1], ("tempo", "tempo"), ("link", "Link"), *ROWS[2:]):
                if s.get(key):
                    t.add_row(label, escape(str(s[key])))
            for nxt in s.get("next_at", [])[:2]:
                t.add_row("next at", escape(nxt))
            for c in list(self._commands)[-4:]:
                t.add_row("command", escape(c))
            for e in s.get("errors", []):
                t.add_row("[red]error[/red]", escape(e))
        for line in logs:
            t.add_row("[dim]log[/]", f"[dim]{escape(line)}[/]")
        return t

    def _run(self) -> None:
        # lazy: rich loads only when the operator view opens
        from rich.live import Live

        with Live(self.table(), refresh_per_second=4, transient=True) as live:
            while not self._stop.wait(0.25):
                live.update(self.table())


class _ViewHandler(logging.Handler):
    def __init__(self, view: OperatorView, level: int) -> None:
        super().__init__(level)
        self.view = view
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.view.log_line(self.format(record).splitlines()[0][:160])
        except Exception:  # a log line must never take the show down
            self.handleError(record)
