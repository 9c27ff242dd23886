"""Reading the files a user or a stranger hands us (scenes, setlists, blocklists, model cards) safely.

Size and nesting are limited before any parser runs: `/dev/zero` named as a scene, a binary, or a
TOML/JSON file nested thousands of levels deep gives one line naming the file, never a hang or a
traceback. Depends on nothing else in the package, so every layer may use it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 1 << 20  # a scene, setlist or blocklist: 1 MiB is thousands of scenes' worth
MAX_CARD_BYTES = 64 << 20  # a model.json (a word model's vocabulary and tables live there)
MAX_DEPTH = 32  # tables/arrays/objects inside each other; real files use 3 or 4


class UnsafeFile(ValueError):
    """A file that is not plain text of a sane size and shape; str(e) is the one line to show."""


def read_limited(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file no larger than `limit`; devices, FIFOs and folders are refused."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UnsafeFile(f"{path}: file not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{path}: not a regular file (a device, pipe or folder cannot be a settings file)")
    if st.st_size > limit:
        raise UnsafeFile(f"{path}: {st.st_size} bytes; at most {limit} allowed")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while we looked
        raise UnsafeFile(f"{path}: more than {limit} bytes; at most {limit} allowed")
    return data


def read_text_limited(path: str | Path, limit: int = MAX_CONFIG_BYTES) -> str:
    """`read_limited` decoded as UTF-8 text; a binary (NUL bytes, bad UTF-8) is refused in one line.
    A leading byte-order mark (Windows Notepad writes one) is dropped: it is no part of the text."""
    data = read_limited(path, limit)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsafeFile(f"{path}: UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8")
    if b"\x00" in data:
        raise UnsafeFile(f"{path}: binary data (NUL bytes); expected UTF-8 text")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise UnsafeFile(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


_STRINGS = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'')  # "basic" and 'literal' strings, one line
_COMMENTS = re.compile(r"#[^\n]*")
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def nesting_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } outside quoted strings and comments (TOML and JSON alike).
    Regular expressions do the scanning (a 1 MB card takes milliseconds); only brackets are counted
    one by one."""
    depth = deepest = 0
    for c in _NOT_BRACKETS.sub("", _COMMENTS.sub("", _STRINGS.sub('""', text))):
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth = max(0, depth - 1)
    return deepest


def _check_depth(path: str | Path, text: str) -> None:
    # TOML headers like [[scene]] count 2 at top level; any real file stays far below the limit
    if nesting_depth(text) > MAX_DEPTH:
        raise UnsafeFile(f"{path}: nested more than {MAX_DEPTH} levels deep")


def load_toml(path: str | Path, limit: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """Parse a TOML file within the size and depth limits; UnsafeFile or tomllib.TOMLDecodeError."""
    text = read_text_limited(path, limit)
    _check_depth(path, text)
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise UnsafeFile(f"{path}: nested too deep to read") from None


def load_json(path: str | Path, limit: int = MAX_CARD_BYTES) -> Any:
    """Parse a JSON file within the size and depth limits; UnsafeFile or json.JSONDecodeError."""
    text = read_text_limited(path, limit)
    _check_depth(path, text)
    try:
        return json.loads(text)
    except RecursionError:
        raise UnsafeFile(f"{path}: nested too deep to read") from None
