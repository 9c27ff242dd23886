"""The x-ray's settings (a scene's [xray] table) and what the stage remembers of it.

`XraySettings` is validated from the scene file and travels in the `scene` event, so a transcript
re-renders with the same panel and trace. `XrayTrack` folds token events (with their `top` and
`unit` fields) into a bounded memory; `XrayView` is its immutable snapshot for one frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

from performance.show.schema import Table
from performance.textgen.base import AUTO, XraySpec

KEEP_CHARS = 4000  # tokens remembered for colouring (a 1080p screen shows far less)
TRACE_LEN = 240  # surprise values along the bottom
MAX_K = 20


@dataclass(frozen=True, slots=True)
class XraySettings:
    """A scene's [xray] table. neuron: None = no unit shown, AUTO = the unit that varied most."""

    k: int = 5  # top alternatives under the newest token (0 = none)
    neuron: int | None = None
    layer: int = -1  # transformers: which block's residual stream (-1 = the last)
    trace: bool = True  # the surprise (-log2 p) trace along the bottom
    curve: bool = False  # the followed checkpoint's validation-loss curve in a corner

    @classmethod
    def from_table(cls, t: Table) -> XraySettings:
        """Validate [xray]; one ConfigError line per bad key."""
        neuron = t.raw("neuron")
        if neuron == "auto":
            neuron = AUTO
        elif neuron is not None and (isinstance(neuron, bool) or not isinstance(neuron, int) or neuron < 0):
            raise t.error("neuron", neuron, 'a unit number >= 0, or "auto"')
        out = cls(k=t.int("k", 5, lo=0, hi=MAX_K), neuron=neuron, layer=t.int("layer", -1, lo=-64, hi=63),
                  trace=t.bool("trace", True), curve=t.bool("curve", False))
        t.check_unknown()
        return out

    def spec(self, neuron: int | None = None) -> XraySpec:
        """What the worker is asked for (neuron: a live override of the scene's unit)."""
        return XraySpec(max(1, self.k), self.neuron if neuron is None else neuron, self.layer)

    def to_dict(self) -> dict:
        """JSON-able (the scene event carries it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> XraySettings | None:
        """Lenient rebuild from a transcript; None when the scene had no x-ray."""
        if not isinstance(d, dict):
            return None
        try:
            return cls(k=min(MAX_K, max(0, int(d.get("k", 5)))),
                       neuron=None if d.get("neuron") is None else int(d["neuron"]),
                       layer=int(d.get("layer", -1)), trace=bool(d.get("trace", True)), curve=bool(d.get("curve", False)))
        except (TypeError, ValueError):
            return cls()


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
