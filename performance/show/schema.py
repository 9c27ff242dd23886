"""Validated reading of TOML tables: every error is one line naming file, key, value and what is allowed.

Each owner of a settings block (look, voice, sonify, install, ...) reads its own block through a
`Table`, so the rules for a key live beside the code that uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MAX_NUMBER = 1e9  # the top of every numeric key that names no range of its own: all ranges are finite


class ConfigError(Exception):
    """A scene, setlist or settings value is not acceptable. str(e) is the one line to show."""


class Table:
    """A TOML table plus where it came from, with typed getters that raise ConfigError."""

    def __init__(self, data: dict[str, Any], file: str | Path, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: '{prefix or 'top level'}' must be a table, got {_show(data)}")
        self.data = data
        self.file = str(file)
        self.prefix = prefix
        self._seen: set[str] = set()

    def key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def error(self, k: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{self.file}: key '{self.key(k)}' = {_show(value)}: {allowed}")

    def has(self, k: str) -> bool:
        return k in self.data

    def raw(self, k: str, default: Any = None) -> Any:
        self._seen.add(k)
        return self.data.get(k, default)

    def sub(self, k: str, required: bool = False) -> Table:
        self._seen.add(k)
        if k not in self.data:
            if required:
                raise ConfigError(f"{self.file}: table '[{self.key(k)}]' is missing")
            return Table({}, self.file, self.key(k))
        v = self.data[k]
        if not isinstance(v, dict):
            raise self.error(k, v, "must be a table")
        return Table(v, self.file, self.key(k))

    def str(self, k: str, default: str | None = None, choices: Iterable[str] | None = None) -> str | None:
        v = self.raw(k, default)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self.error(k, v, "must be a string" + (f" ({', '.join(choices)})" if choices else ""))
        if choices is not None:
            choices = list(choices)
            if v not in choices:
                raise self.error(k, v, f"allowed: {', '.join(choices)}")
        return v

    def bool(self, k: str, default: bool | None = None) -> bool | None:
        v = self.raw(k, default)
        if v is None:
            return None
        if not isinstance(v, bool):
            raise self.error(k, v, "must be true or false")
        return v

    def float(self, k: str, default: float | None = None, lo: float | None = None, hi: float | None = None) -> float | None:
        v = self.raw(k, default)
        if v is None:
            return None
        hi = MAX_NUMBER if hi is None else hi
        lo = -MAX_NUMBER if lo is None else lo
        # NaN compares false with everything, so a range check alone lets it (and inf without hi) through
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
            raise self.error(k, v, f"must be a number{_range(lo, hi)} (finite)")
        return float(v)

    def int(self, k: str, default: int | None = None, lo: int | None = None, hi: int | None = None) -> int | None:
        v = self.raw(k, default)
        if v is None:
            return None
        hi = int(MAX_NUMBER) if hi is None else hi
        lo = -int(MAX_NUMBER) if lo is None else lo
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(k, v, f"must be a whole number{_range(lo, hi)}")
        if not lo <= v <= hi:
            raise self.error(k, v, f"must be a whole number{_range(lo, hi)}")
        return v

    def list(self, k: str, default: list | None = None, item: type | tuple = object) -> list | None:
        v = self.raw(k, default)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, item) and not isinstance(x, bool) or item is bool for x in v):
            name = getattr(item, "__name__", "value")
            raise self.error(k, v, f"must be a list of {name}s")
        if any(isinstance(x, float) and (not math.isfinite(x) or abs(x) > MAX_NUMBER) for x in v):
            raise self.error(k, v, f"must be a list of finite {getattr(item, '__name__', 'value')}s "
                                   f"from {-MAX_NUMBER:g} to {MAX_NUMBER:g}")
        return v

    def check_unknown(self, extra_allowed: Iterable[str] = ()) -> None:
        """Reject keys nobody read: a typo ('temprature') must not pass silently."""
        allowed = self._seen | set(extra_allowed)
        for k in self.data:
            if k not in allowed:
                raise self.error(k, self.data[k], f"unknown key; known here: {', '.join(sorted(allowed)) or 'none'}")


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."
