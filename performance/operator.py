"""The operator view: a live terminal panel (rich) beside the stage, on its own thread.

The frame loop hands it a snapshot about once a second; the view never touches engine state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any


class OperatorView:
    """Scene now and standing by, poem n of N, temperature, seed, model, tokens/s, fps, last commands."""

    def __init__(self) -> None:
        self._snap: dict = {}
        self._commands: deque[str] = deque(maxlen=6)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lectern-operator", daemon=True)
        self._tokens_prev = (time.monotonic(), 0)
        self._tok_s = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def update(self, snap: dict, engine: Any, worker: Any, stats: Any) -> None:
        t, n = time.monotonic(), getattr(worker, "tokens", 0)
        t0, n0 = self._tokens_prev
        if t - t0 >= 0.5:
            self._tok_s = (n - n0) / (t - t0)
            self._tokens_prev = (t, n)
        self._snap = {**snap, "fps": stats.fps(), "tok_s": self._tok_s, "errors": list(engine.errors)[-3:]}

    def command(self, line: str) -> None:
        self._commands.append(line)

    def _table(self):
        from rich.table import Table

        s = self._snap
        t = Table(title="Lectern", show_header=False, expand=False)
        t.add_column(style="bold cyan")
        t.add_column()
        if not s:
            t.add_row("state", "starting…")
            return t
        t.add_row("scene", f"{s['scene'][0]} {s['scene'][1]}  [{s['state']}]")
        t.add_row("standing by", f"{s['standby'][0]} {s['standby'][1]}" if s["standby"][0] else "—")
        n, of = s["poem"]
        t.add_row("poem", f"{n} of {of}" if of else str(n))
        over = " (override)" if s.get("override") is not None else ""
        t.add_row("temperature", f"{s['temperature']:.2f}{over}")
        t.add_row("seed", str(s["seed"]))
        t.add_row("model", s["model"])
        t.add_row("tokens/s · fps", f"{s['tok_s']:.0f} · {s['fps']:.1f}")
        if s.get("served"):  # a served model: up with its streaming rate, or down and who writes instead
            t.add_row("served", s["served"])
        t.add_row("paused · voice · volume", f"{s['paused']} · {s['voice']} · {s['volume']:.2f}")
        for c in list(self._commands)[-4:]:
            t.add_row("command", c)
        for e in s.get("errors", []):
            t.add_row("[red]error[/red]", e)
        return t

    def _run(self) -> None:
        from rich.live import Live

        with Live(self._table(), refresh_per_second=4, transient=True) as live:
            while not self._stop.wait(0.25):
                live.update(self._table())
