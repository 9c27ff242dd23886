"""Edits while the show runs: a file watcher on its own thread (`lectern-watch`).

It watches the folders of the running setlist and of the scene files it names (watchfiles:
inotify, no polling, nothing in the frame loop). When one of those files changes, or when
`/lectern/reload` arrives (from any controller, through the router), it reads the setlist again
and checks it as at start (show/reload.py), then puts one `Reload` message on the inbox: the new
version, or the one line saying why a file was refused. The engine takes a new version at the
next poem or cue boundary (engine/reload.py); a refused one changes nothing but that line.
"""

from __future__ import annotations

import argparse
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from performance.controllers.base import Context, Controller
from performance.controllers.inbox import Inbox
from performance.protocol.commands import Command

log = logging.getLogger("lectern.watch")
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)  # "N changes detected" for every file in the folder
DEBOUNCE_MS = 400  # an editor's save (write, rename, chmod) arrives as one batch of changes
WAKE_MS = 200  # the watch wakes this often to take /lectern/reload requests and to see stop()


class Watch(Controller):
    """Reloads the running setlist when its files change on disk, or on `/lectern/reload`."""

    name = "watch"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--no-watch", action="store_true",
                            help="do not reload the setlist and its scene files when they change on disk "
                                 "(/lectern/reload still does)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, ctx: Context) -> Watch | None:
        # lazy: `run.py --help` imports this module; the config reader loads when the watcher starts
        from performance.show.reload import installation_setlist

        if not getattr(ctx.setlist, "file", ""):
            return None
        install = bool(getattr(args, "install", False))
        return cls(ctx.setlist, auto=not getattr(args, "no_watch", False),
                   adjust=lambda sl: installation_setlist(sl, install))

    def __init__(self, setlist, *, auto: bool = True, adjust: Callable | None = None) -> None:
        # lazy: `run.py --help` imports this module; the config reader loads when the watcher starts
        from performance.show.reload import setlist_files, setlist_models, sha256_file

        self.path = Path(setlist.file)
        self.models = setlist_models(setlist)  # they exist: a new version naming only these reads no card
        self.auto = auto
        self.adjust = adjust
        self.files = setlist_files(setlist)  # the files of the newest version read
        self.hashes = {str(p): sha256_file(p) for p in self.files}  # as last read: an unchanged save is no edit
        self.reloads = 0
        self._inbox: Inbox | None = None
        self._requests: queue.Queue[Command] = queue.Queue(maxsize=16)
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once the folders are watched (a change from then on is seen)
        self._thread = threading.Thread(target=self._run, name="lectern-watch", daemon=True)

    def start(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._thread.start()

    def request(self, cmd: Command) -> None:
        """/lectern/reload (the router, on the frame thread): queued for the watcher's thread."""
        try:
            self._requests.put_nowait(cmd)
        except queue.Full:
            if cmd.reply:
                cmd.reply(False, "reload refused: reloads are already queued")

    def status(self) -> dict[str, str]:
        return {"watch": f"{len(self.files)} files" + ("" if self.auto else " (on /lectern/reload only)")}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    # ---- the watcher's thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.auto:
                    self._watch()
                else:
                    self.ready.set()
                    self._serve(self._requests.get(timeout=WAKE_MS / 1000))
            except queue.Empty:
                continue
            except Exception:  # the watcher must never take the show down: it says so and waits
                log.exception("file watcher failed; it starts again in a second")
                self._stop.wait(1.0)

    def _watch(self) -> None:
        """Watch the folders of the current files until the file list changes (or stop)."""
        # lazy: watchfiles (a Rust extension) loads only when a show watches its files
        import watchfiles

        folders = sorted({p.parent for p in self.files})
        watched = [f for f in folders if f.is_dir()]
        if not watched:  # the folders are gone: only /lectern/reload can bring the files back
            self._serve(self._requests.get(timeout=WAKE_MS / 1000))
            return
        for changes in watchfiles.watch(*watched, watch_filter=None, debounce=DEBOUNCE_MS, step=50,
                                        stop_event=self._stop, rust_timeout=WAKE_MS, yield_on_timeout=True,
                                        raise_interrupt=False, recursive=False, ignore_permission_denied=True):
            self.ready.set()
            while not self._requests.empty():
                self._serve(self._requests.get_nowait())
            mine = set(self.files)
            hit = sorted({Path(p).resolve() for _, p in changes} & mine)
            if hit and self._changed(hit):
                self._reload(hit[0], "watch", None)
            if sorted({p.parent for p in self.files}) != folders:
                return  # the new version names a scene in another folder: watch that one too

    def _changed(self, hit: list[Path]) -> bool:
        # lazy: `run.py --help` imports this module; the config reader loads when the watcher starts
        from performance.show.reload import sha256_file

        return any(sha256_file(p) != self.hashes.get(str(p)) for p in hit)

    def _serve(self, cmd: Command) -> None:
        self._reload(self.path, cmd.source, cmd.reply)

    def _reload(self, changed: Path, source: str, reply) -> None:
        # lazy: `run.py --help` imports this module; the config reader loads when the watcher starts
        from performance.show.reload import read_again, setlist_files, setlist_models

        msg = read_again(self.path, changed=changed, source=source, adjust=self.adjust, known=self.files,
                         models=self.models, reply=reply)
        self.hashes.update(msg.files)
        self.hashes[str(changed.resolve())] = msg.sha256
        if msg.setlist is not None:
            self.files = setlist_files(msg.setlist)
            self.models |= setlist_models(msg.setlist)
        else:
            log.warning("reload refused: %s", msg.error)
        self.reloads += 1
        if self._inbox is not None:
            try:
                self._inbox.put_nowait(msg)
            except queue.Full:
                log.warning("reload of %s dropped: the inbox is full", changed)
