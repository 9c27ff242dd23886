"""A scene's [xray] table: what the x-ray layout shows (validated from the scene file).

It travels in the `scene` event, so a transcript re-renders with the same panel and trace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from performance.show.schema import Table
from performance.textgen.base import AUTO, XraySpec

MAX_K = 20  # top alternatives the panel can list


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
