"""Transcripts: the session's event log (.jsonl) and its poems (.txt), written off the frame loop.

Names follow the contract: generated-YYYY-MM-DDTHH-MM-SS_<setlist>.txt and .jsonl beside it (no
colons, so the files copy onto any file system). Each jsonl line is one event with "t" (engine
seconds since session start), "wall" (ISO time on the engine's notion of wall time) and "event".
`keep` appends a poem to harvest.txt in the same folder for editing after the show. An edit of
the running setlist or its scenes writes `reload` (the file, its sha256, ok or the refusal's one
line) and, once it takes the stage, `reload_applied`; `reloads()` reads them back.

Each file is written on its own, in whole lines: a full disk or a read-only file holds that file's
lines in bounded memory (the show goes on) and they are written, with a `resumed` event, when it can
be written again. A keep is answered "ok" only once its line is on disk. Lines still held when the
session ends (the disk is still full or read-only) are saved in a folder of their own under the
temp dir (or ~/.cache), said in one line; if that fails too, one line counts what was lost.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from performance import faults

log = logging.getLogger("lectern.transcript")


def transcript_stem(started: datetime, setlist: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", setlist).strip("-") or "set"
    return f"generated-{started.strftime('%Y-%m-%dT%H-%M-%S')}_{safe}"


MAX_HELD_BYTES = 32 << 20  # what one file holds in memory while its disk is full; past this the oldest goes
RETRY_S = 5.0  # a file that failed is tried again this often (and at every new line)


def session_wall0(clock) -> datetime:
    """The wall time at engine time 0: what `wall` = wall0 + t needs (clock.wall() is wall0 + now())."""
    return clock.wall() - timedelta(seconds=clock.now())


class _LineFile:
    """One append-only text file written in whole lines, independent of every other file.

    Lines wait in a bounded buffer until written. A failed write (a full disk, a read-only file) is
    cut back to the last whole line (no torn line), the lines stay held, and the file is reopened and
    tried again; `resumed` says how many lines were held when it works again, `lost` how many were
    let go to stay within `max_bytes`."""

    def __init__(self, path: Path, what: str, max_bytes: int = MAX_HELD_BYTES, retry_s: float = RETRY_S) -> None:
        self.path, self.what, self.max_bytes, self.retry_s = path, what, max_bytes, retry_s
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._fd: int | None = None
        self._retry_at = 0.0
        self.failing = False
        self.failures = 0
        self.lost = 0
        self.held_through = 0  # lines that waited through the last failure
        self.why = ""  # the last failure, as the OS said it

    def add(self, line: str) -> None:
        b = line.encode("utf-8", "replace")
        self._held.append(b)
        self._held_bytes += len(b)
        while self._held_bytes > self.max_bytes and len(self._held) > 1:
            self._held_bytes -= len(self._held.popleft())
            self.lost += 1

    def open(self) -> None:
        """Create the file now (an empty transcript still exists); a failure is held like a write's."""
        if self._fd is None:
            try:
                self._fd = self._open()
            except OSError as e:
                self._fail(e, None)

    def pending(self) -> int:
        """Lines held, not yet written."""
        return len(self._held)

    def discard(self) -> None:
        """Let go of every held line (a keep that failed was answered "error": it is not retried)."""
        self._held.clear()
        self._held_bytes = 0

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:  # a torn last line (a crash, an old full disk) is cut back to the last newline
            size = os.fstat(fd).st_size
            if size:
                with open(self.path, "rb") as f:
                    f.seek(max(0, size - 65536))
                    tail = f.read()
                if not tail.endswith(b"\n"):
                    cut = tail.rfind(b"\n")
                    os.ftruncate(fd, size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail)))
        except OSError:
            pass
        return fd

    def flush(self, sync: bool = False, force: bool = False) -> bool:
        """Write everything held; True when nothing is left held. Never raises."""
        if not self._held:
            return True
        now = time.monotonic()
        if self.failing and not force and now < self._retry_at:
            return False
        size = None
        try:
            if self._fd is None:
                self._fd = self._open()
            if faults.active("disk_full"):
                raise OSError(errno.ENOSPC, "No space left on device (fault injection)")
            size = os.fstat(self._fd).st_size
            data = b"".join(self._held)
            view, done = memoryview(data), 0
            while done < len(data):
                done += os.write(self._fd, view[done:])
            if sync:
                os.fsync(self._fd)
        except OSError as e:
            self._fail(e, size)
            return False
        if self.failing:
            self.held_through = len(self._held)
        self._held.clear()
        self._held_bytes = 0
        if self.failing:
            self.failing = False
            log.warning("%s resumed (%d lines had waited, %d lost)", self.what, self.held_through, self.lost)
        return True

    def _fail(self, e: OSError, size: int | None) -> None:
        if self._fd is not None:
            if size is not None:
                try:
                    os.ftruncate(self._fd, size)  # take back a partial write: whole lines only
                except OSError:
                    pass
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None  # reopened at the next try: the file may have been replaced or fixed
        self.failures += 1
        self.why = e.strerror or str(e)
        if not self.failing:
            log.error("%s: writing paused (%s); its lines are held in memory and retried every %.0f s; "
                      "the show goes on",
                      self.what, e, self.retry_s)
        self.failing = True
        self.held_through = len(self._held)
        self._retry_at = time.monotonic() + self.retry_s

    def save_to(self, folder: Path) -> bool:
        """Write the held lines to a file of the same name in `folder` (the end of a session whose
        disk never came back); True when they are there."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / self.path.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                data = b"".join(self._held)
                view, done = memoryview(data), 0
                while done < len(data):
                    done += os.write(fd, view[done:])
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self.flush(force=True)
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


class TranscriptWriter:
    """Owns the transcript files. `write(event)` and `keep(...)` only enqueue.

    The .jsonl, the .txt and harvest.txt are written independently: one failing file never stops
    the others. While a disk is full, lines are held in bounded memory and written when it has space
    again, followed by a `resumed` event. A keep is answered only once its line is on disk (fsync)."""

    def __init__(self, folder: Path, setlist: str, wall0: datetime, max_queue: int = 200_000) -> None:
        self.folder = Path(folder)
        self.wall0 = wall0
        self.stem = transcript_stem(wall0, setlist)
        self.jsonl_path = self.folder / f"{self.stem}.jsonl"
        self.txt_path = self.folder / f"{self.stem}.txt"
        self.harvest_path = self.folder / "harvest.txt"
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="lectern-transcript", daemon=True)
        self.dropped = 0
        self._jsonl = _LineFile(self.jsonl_path, "transcript .jsonl")
        self._txt = _LineFile(self.txt_path, "transcript .txt")
        self._harvest = _LineFile(self.harvest_path, "harvest.txt", retry_s=0.0)
        self._last_t = 0.0  # engine time of the last event (the resumed event carries it)

    @property
    def errors(self) -> int:
        """Failed writes, all files together."""
        return self._jsonl.failures + self._txt.failures + self._harvest.failures

    def start(self) -> None:
        self._thread.start()

    def write(self, event: dict) -> None:
        try:
            self._q.put_nowait(("event", event))
        except queue.Full:
            self.dropped += 1

    def write_many(self, events: list[dict]) -> None:
        """A frame's events in one hand-over: a flick frame reveals a whole poem, 1,200 token events,
        and one queue operation instead of 1,200 keeps the frame loop's share of that small."""
        if not events:
            return
        try:
            self._q.put_nowait(("events", events))
        except queue.Full:
            self.dropped += len(events)

    def keep(self, text: str, footer: str, reply: Callable[[bool, str], None] | None = None) -> None:
        """Append a poem to harvest.txt; `reply(ok, detail)` once it is on disk, or why it is not."""
        try:
            self._q.put_nowait(("keep", (text, footer, reply)))
        except queue.Full:
            self.dropped += 1
            if reply:
                reply(False, "not kept: the transcript writer is overloaded")

    def close(self, timeout: float = 10.0) -> None:
        self._q.put(("close", None))
        self._thread.join(timeout)

    def _event(self, payload: dict, last: bool = True) -> None:
        was_failing = self._jsonl.failing
        ev = {"t": payload["t"], "wall": (self.wall0 + timedelta(seconds=payload["t"])).isoformat(
            timespec="milliseconds"), **{k: v for k, v in payload.items() if k != "t"}}
        self._jsonl.add(json.dumps(ev, ensure_ascii=False) + "\n")
        self._last_t = payload["t"]
        if payload["event"] == "poem_end" and payload.get("text"):
            self._txt.add(f"{payload['text']}\n\n{payload.get('footer', '')}\n\n\n")
        if (last and self._q.empty()) or self._jsonl.pending() >= 512:
            self._flush_all(was_failing)

    def _flush_all(self, was_failing: bool | None = None) -> None:
        was_failing = self._jsonl.failing if was_failing is None else was_failing
        if self._jsonl.flush() and was_failing:
            self._jsonl.add(json.dumps({"t": self._last_t, "wall": (self.wall0 + timedelta(seconds=self._last_t)).isoformat(
                timespec="milliseconds"), "event": "resumed", "what": "disk", "held": self._jsonl.held_through,
                "lost": self._jsonl.lost}) + "\n")
            self._jsonl.flush()
        self._txt.flush()

    def _keep(self, text: str, footer: str, reply: Callable[[bool, str], None] | None) -> None:
        self._harvest.add(f"{text}\n\n{footer}\n\n\n")
        ok = self._harvest.flush(sync=True, force=True)
        if not ok:  # a keep is answered now: not held for later, so "error" means not kept
            self._harvest.discard()
        if reply:
            try:
                reply(ok, "kept (on disk in harvest.txt)" if ok else "not kept: harvest.txt cannot be written")
            except Exception:
                log.exception("keep reply failed")

    def _run(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            log.error("transcript folder %s cannot be made (%s); the show goes on", self.folder, e)
        self._jsonl.open()
        self._txt.open()
        while True:
            try:
                kind, payload = self._q.get(timeout=1.0)
            except queue.Empty:
                self._flush_all()  # a disk that has space again gets its held lines without waiting for events
                continue
            if kind == "close":
                break
            try:
                if kind == "event":
                    self._event(payload)
                elif kind == "events":
                    for i, ev in enumerate(payload, 1):
                        self._event(ev, last=i == len(payload))
                elif kind == "keep":
                    self._keep(*payload)
            except Exception:  # nothing an event holds may stop the writer
                log.exception("transcript: event not written")
        self._flush_all()
        for f in (self._jsonl, self._txt, self._harvest):
            f.close()
        self._save_what_is_held()

    def _save_what_is_held(self) -> None:
        """At the end: lines the session's folder never took go elsewhere, or are counted, in one line."""
        held = [f for f in (self._jsonl, self._txt) if f.pending()]
        if not held:
            return
        what = " and ".join(f"{f.pending()} {'.jsonl lines' if f is self._jsonl else '.txt poems'}" for f in held)
        why = held[0].why or "cannot write"
        folders = [Path(tempfile.gettempdir()) / "lectern-unsaved", Path.home() / ".cache" / "lectern-unsaved"]
        where = {f: next((d for d in folders if f.save_to(d)), None) for f in held}
        if all(where.values()):
            log.warning("transcript: %s could not be written to %s (%s); saved to %s", what, self.folder, why,
                        " and ".join(sorted({str(d) for d in where.values()})))
            return
        lost = " and ".join(f"{f.pending()} {'.jsonl lines' if f is self._jsonl else '.txt poems'}"
                            for f, d in where.items() if d is None)
        log.error("transcript: %s could not be written to %s (%s) nor to %s: %s lost", what, self.folder, why,
                  " or ".join(map(str, folders)), lost)


def read_events(path: str | Path) -> list[dict]:
    """Parse a .jsonl transcript (skipping a torn last line after a crash)."""
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def reloads(events: list[dict]) -> list[dict]:
    """The reloads of a session, from its events: each `reload` event (t, file, sha256, files,
    source, ok, error or takes_effect) with `applied_at`, the time its `reload_applied` event says
    the new version took the stage (None for a refused edit, or one a later edit replaced)."""
    out: list[dict] = []
    for e in events:
        if e.get("event") == "reload":
            out.append({**e, "applied_at": None})
        elif e.get("event") == "reload_applied":
            for r in reversed(out):
                if r["ok"] and r["sha256"] == e.get("sha256") and r["file"] == e.get("file"):
                    r["applied_at"] = e["t"]
                    break
    return out


def chosen_words(events: list[dict]) -> list[tuple[int, str, str]]:
    """Co-writing: the words a person chose, in order, as (poem n, word, who chose: key|osc|midi|
    remote|...), read from the `chosen` marks of the transcript's token events."""
    return [(int(e["poem"]), str(e.get("word", e["text"])).strip(), str(e["chosen"])) for e in events
            if e.get("event") == "token" and e.get("chosen")]
