"""The live generator worker: a daemon thread around WorkerCore, replaced by its owner if it dies.

Stopping is cooperative: the thread checks its stop flag between tokens (every `work` call makes
at most a few). A worker stalled inside a model call is abandoned, never killed from outside: it
keeps its old queues, which nobody reads, and a fresh thread with fresh queues and a fresh core
takes over at once; the old one ends by itself when its call returns and it sees the flag.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from performance.protocol.worker import Close, WorkerIn, WorkerOut
from performance.worker.core import WorkerCore

log = logging.getLogger("lectern.generator")
TOKENS_PER_TURN = 8  # tokens one turn of the loop may make before it looks at its inbox and stop flag


class GeneratorThread:
    """The live worker, owned by the runtime: send requests, read answers from `outbox`."""

    def __init__(self, loader: Callable[[str], object] | None = None) -> None:
        self.inbox: queue.Queue[WorkerIn] = queue.Queue()
        self.outbox: queue.Queue[WorkerOut] = queue.Queue()
        self._loader = loader
        self._stop = threading.Event()
        self.restarts = 0
        self.tokens = 0
        self._thread: threading.Thread | None = None
        self._abandoned: list[threading.Thread] = []  # stalled threads told to stop, until they have
        self.core: WorkerCore | None = None

    def stalled_threads(self) -> int:
        """Threads of replaced workers that are still running (0 once each has really stopped)."""
        self._abandoned = [t for t in self._abandoned if t.is_alive()]
        return len(self._abandoned)

    def start(self) -> None:
        """Start a worker thread on the current queues."""
        self.core = WorkerCore(self.outbox.put, self._loader)
        self._thread = threading.Thread(target=self._run, args=(self.core, self._stop, self.inbox),
                                        name="lectern-generator", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """Is the current worker thread running?"""
        return self._thread is not None and self._thread.is_alive()

    def restart(self) -> None:
        """Start a fresh worker after a crash or a stall, on fresh queues (a stalled thread still
        holds the old ones); open requests are gone and the engine re-opens its poems."""
        self.restarts += 1
        self._stop.set()  # the old thread ends at its next turn
        self.inbox.put(Close(-1))  # wakes it if it waits for a message
        old = self._thread
        if old is not None and old.is_alive():
            self._abandoned = [t for t in self._abandoned if t.is_alive()] + [old]
            if len(self._abandoned) > 1:
                log.error("%d stalled generator threads have not ended yet", len(self._abandoned))
        self._stop = threading.Event()
        self.inbox = queue.Queue()
        self.outbox = queue.Queue()
        self.start()

    def send(self, msg: WorkerIn) -> None:
        """A request for the worker (it never blocks)."""
        self.inbox.put(msg)

    def stop(self) -> None:
        """Ask the worker to end (and a trainer it started); it ends at its next turn."""
        self._stop.set()
        if self.core is not None:
            self.core.stop_training()
        self.inbox.put(Close(-1))

    def _run(self, core: WorkerCore, stop: threading.Event, inbox: queue.Queue) -> None:
        # the thread's own core, flag and queue: a restart gives the next thread new ones
        try:
            while not stop.is_set():
                block = not core.busy()
                try:
                    msg = inbox.get(block=block, timeout=0.5 if block else None)
                    core.handle(msg)
                    while not stop.is_set():  # drain everything waiting before generating more
                        core.handle(inbox.get_nowait())
                except queue.Empty:
                    pass
                if not stop.is_set():
                    self.tokens += core.work(TOKENS_PER_TURN)
            if self._thread is not threading.current_thread():
                log.warning("a replaced generator worker has ended")
        except Exception:
            log.exception("generator worker died")
