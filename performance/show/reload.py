"""Reading a running setlist again: which files it is made of, their sha256, and the new version
checked exactly as at start (show/config.py), so a bad edit is refused with the config's one line.

Called on the file watcher's thread (controllers/watch.py), never on the frame loop: it reads
files. The result is a `protocol.actions.Reload` message for the engine's inbox.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from performance.protocol.actions import Reload
from performance.show.config import Scene, Setlist, load_setlist
from performance.show.schema import ConfigError
from performance.textgen.base import ModelFileError
from performance.textgen.cards import read_card, resolve_model_dir

READ_TRIES = 3  # a file that changes while it is read is read again (an editor still saving)
INLINE = " [[scene]] #"  # how config.py names a scene written inline in its setlist


def installation_setlist(setlist: Setlist, install: bool) -> Setlist:
    """What `run.py play --install` plays of a setlist: it loops forever (unless its [install]
    table says loop = false), at start as after every reload."""
    if install and (setlist.install is None or setlist.install.loop):
        return dataclasses.replace(setlist, loop=True)
    return setlist


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes ("" when it cannot be read: it was removed or is unreadable)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def setlist_files(setlist: Setlist) -> list[Path]:
    """The files a setlist is made of: the setlist, then each scene file it names (absolute, once)."""
    out = [Path(setlist.file).resolve()]
    for e in setlist.entries:
        if INLINE not in e.scene.file:
            p = Path(e.scene.file).resolve()
            if p not in out:
                out.append(p)
    return out


def scene_key(scene: Scene) -> str:
    """What makes a scene the same scene in a new version of its setlist: its file, or for a scene
    written inline in the setlist its name (its position may have moved)."""
    if INLINE in scene.file:
        return "name:" + scene.name
    # a string operation, no file system call: the engine asks this on the frame thread, and both
    # versions were read from the same setlist path, so one file is spelled one way
    return "file:" + os.path.normpath(scene.file)


def setlist_models(setlist: Setlist) -> set[str]:
    """Every model a setlist's scenes name."""
    return {m for e in setlist.entries for m in e.scene.models}


def _check_models(setlist: Setlist, known: set[str]) -> None:
    """A model the new version names must exist now, not fail later in the worker. Only the new
    ones are read: a card is parsed in regular expressions that hold the GIL (safe_files), and the
    frame loop shares it."""
    seen: set[str] = set(known)
    for e in setlist.entries:
        for m in e.scene.models:
            if m in seen:
                continue
            seen.add(m)
            try:
                read_card(resolve_model_dir(m))
            except ModelFileError as err:
                raise ConfigError(f"{e.scene.file}: key 'model' = {m!r}: a model folder or a name under models/ "
                                  f"({err})") from None


def read_again(path: str | Path, *, changed: str | Path | None = None, source: str = "watch",
               adjust: Callable[[Setlist], Setlist] | None = None, known: list[Path] | None = None,
               models: set[str] | None = None, reply: Callable[[bool, str], None] | None = None) -> Reload:
    """The setlist at `path` read and checked again, as a Reload message (never raises).

    changed: the file whose change caused this (default: the setlist); its sha256 is the one the
    transcript records. adjust: what the runtime does to a setlist after loading it (an
    installation loops). known: the files the running version is made of; models: the models it
    names (known to exist: only others are checked). Every file is hashed
    before and after the parse; one that changed meanwhile (an editor still saving) is read again,
    so the hashes are those of the bytes that were parsed."""
    path = Path(path)
    changed = Path(changed) if changed is not None else path
    known = list(known) if known else [path.resolve()]
    running = known  # a refused version is hashed as the files the running one is made of
    setlist, error, files = None, "", {}
    for _ in range(READ_TRIES):
        before = {str(p): sha256_file(p) for p in known}
        try:
            setlist, error = load_setlist(path), ""
            _check_models(setlist, models or set())
            if adjust is not None:
                setlist = adjust(setlist)
        except ConfigError as e:
            setlist, error = None, str(e)
        now = setlist_files(setlist) if setlist is not None else list(dict.fromkeys([*running, changed.resolve()]))
        files = {str(p): sha256_file(p) for p in now}
        if all(before.get(k) == v for k, v in files.items()):
            break  # every file read is one hashed before the parse, and unchanged since
        known = now
    sha = files.get(str(changed.resolve())) or sha256_file(changed)
    return Reload(setlist, error, str(changed), sha, tuple(files.items()), source, reply)
