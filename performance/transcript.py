"""Transcripts: the session's event log (.jsonl) and its poems (.txt), written off the frame loop.

Names follow the contract: generated-YYYY-MM-DDTHH-MM-SS_<setlist>.txt and .jsonl beside it (no
colons, so the files copy onto any file system). Each jsonl line is one event with "t" (engine
seconds since session start), "wall" (ISO time on the engine's notion of wall time) and "event".
`keep` appends a poem to harvest.txt in the same folder for editing after the show.

A full disk pauses writing (the show goes on) and writing resumes when space is back.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from datetime import datetime, timedelta
from pathlib import Path

log = logging.getLogger("lectern.transcript")


def transcript_stem(started: datetime, setlist: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", setlist).strip("-") or "set"
    return f"generated-{started.strftime('%Y-%m-%dT%H-%M-%S')}_{safe}"


class TranscriptWriter:
    """Owns the transcript files. `write(event)` and `keep(...)` only enqueue."""

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
        self.errors = 0
        self._guard = None
        try:
            from performance.install.diskguard import DiskGuard

            self._guard = DiskGuard()
        except ImportError:
            pass

    def start(self) -> None:
        self._thread.start()

    def write(self, event: dict) -> None:
        try:
            self._q.put_nowait(("event", event))
        except queue.Full:
            self.dropped += 1

    def keep(self, text: str, footer: str) -> None:
        try:
            self._q.put_nowait(("keep", (text, footer)))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 10.0) -> None:
        self._q.put(("close", None))
        self._thread.join(timeout)

    def _ok(self) -> bool:
        return self._guard.ok_to_write() if self._guard else True

    def _failed(self, e: OSError) -> None:
        self.errors += 1
        if self._guard:
            self._guard.note_error(e)
        if self.errors <= 3 or self.errors % 1000 == 0:
            log.error("transcript write failed (%s); the show goes on", e)

    def _run(self) -> None:
        jsonl = txt = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            jsonl = open(self.jsonl_path, "a", encoding="utf-8", buffering=1 << 16)
            txt = open(self.txt_path, "a", encoding="utf-8")
        except OSError as e:
            self._failed(e)
        while True:
            kind, payload = self._q.get()
            if kind == "close":
                break
            try:
                if kind == "event":
                    if jsonl is None or not self._ok():
                        continue
                    ev = {"t": payload["t"], "wall": (self.wall0 + timedelta(seconds=payload["t"])).isoformat(
                        timespec="milliseconds"), **{k: v for k, v in payload.items() if k != "t"}}
                    jsonl.write(json.dumps(ev, ensure_ascii=False) + "\n")
                    if payload["event"] == "poem_end" and txt is not None and payload.get("text"):
                        txt.write(f"{payload['text']}\n\n{payload.get('footer', '')}\n\n\n")
                        txt.flush()
                    if self._q.empty():
                        jsonl.flush()
                elif kind == "keep":
                    text, footer = payload
                    with open(self.harvest_path, "a", encoding="utf-8") as h:
                        h.write(f"{text}\n\n{footer}\n\n\n")
            except OSError as e:
                self._failed(e)
        for f in (jsonl, txt):
            try:
                if f:
                    f.close()
            except OSError as e:
                self._failed(e)


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
