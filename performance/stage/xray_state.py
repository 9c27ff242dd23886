"""What the stage remembers of the x-ray (settings: performance.show.xray_settings).

`XrayTrack` folds token events (with their `top` and
`unit` fields) into a bounded memory; `XrayView` is its immutable snapshot for one frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from performance.show.xray_settings import XraySettings
from performance.textgen.base import AUTO

KEEP_CHARS = 4000  # tokens remembered for colouring (a 1080p screen shows far less)
TRACE_LEN = 240  # surprise values along the bottom




@dataclass(frozen=True, slots=True)
class XrayView:
    """One frame's x-ray: the remembered tokens (poem n, text, p, unit), the newest alternatives,
    the surprise trace, the watched unit, the checkpoint label and loss curve."""

    settings: XraySettings
    tokens: tuple[tuple[int, str, float, float | None], ...]
    top: tuple[tuple[str, float], ...]
    surprise: tuple[float, ...]
    unit: int | None
    label: str | None
    curve: tuple[tuple[float, float], ...]


class XrayTrack:
    """Bounded memory of the x-ray data of column 0. One owner: the StageState that holds it."""

    def __init__(self, settings: XraySettings) -> None:
        self.settings = settings
        self.tokens: deque[tuple[int, str, float, float | None]] = deque()
        self.chars = 0
        self.top: tuple[tuple[str, float], ...] = ()
        self.surprise: deque[float] = deque(maxlen=TRACE_LEN)
        self.unit: int | None = settings.neuron if settings.neuron != AUTO else None
        self.label: str | None = None
        self.curve: tuple[tuple[float, float], ...] = ()
        self._view: XrayView | None = None

    def token(self, ev: dict) -> None:
        """Fold a token event in (its `top` and `unit` are optional)."""
        text, p = str(ev["text"]), float(ev.get("p", 1.0))
        unit = ev.get("unit")
        self.tokens.append((int(ev["poem"]), text, p, None if unit is None else float(unit)))
        self.chars += len(text)
        while self.chars > KEEP_CHARS and len(self.tokens) > 1:
            self.chars -= len(self.tokens.popleft()[1])
        top = ev.get("top")
        if top is not None:
            self.top = tuple((str(s), float(q)) for s, q in top)
        if text.strip():
            self.surprise.append(-math.log2(min(1.0, max(1e-12, p))))
        self._view = None

    def poem(self, ev: dict) -> None:
        """A new poem: its checkpoint label and loss curve, when the model is followed."""
        if ev.get("checkpoint"):
            self.label = str(ev["checkpoint"])
        if ev.get("unit_index") is not None:
            self.unit = int(ev["unit_index"])
        curve = ev.get("curve")
        if isinstance(curve, list):
            self.curve = tuple((float(a), float(b)) for a, b in curve)
        self._view = None

    def neuron(self, unit: int) -> None:
        """The performer chose another unit."""
        self.unit = int(unit)
        self._view = None

    def view(self) -> XrayView:
        """The immutable snapshot (rebuilt only after a change)."""
        if self._view is None:
            self._view = XrayView(self.settings, tuple(self.tokens), self.top, tuple(self.surprise),
                                  self.unit, self.label, self.curve)
        return self._view
