"""The engine: the show's state and rules, driven by `Engine.step(now, inbox) -> Outbox`."""

from performance.engine.core import Engine

__all__ = ["Engine"]
