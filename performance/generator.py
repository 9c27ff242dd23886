"""The generator worker: owns the models, streams tokens ahead of the stage under credit.

The engine opens a request per poem and grants it tokens, each grant carrying the temperature for
that token. The worker never generates more than it was granted, so the look-ahead is bounded and a
temperature change shows within `lookahead` tokens. The worker runs the poem's LengthCounter itself
and reports Done, so it never writes past a poem's end; a continued stream resumes exactly there.

`WorkerCore` holds the logic and is driven either by `GeneratorThread` (live) or directly by tests
and the fake-clock simulator (deterministic, no threads).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from performance import faults
from performance.textgen.base import ModelFileError, Token
from performance.textgen.lengths import LengthCounter, LengthRule

log = logging.getLogger("lectern.generator")

# Kinds whose "temperature" is a 0..1 scale (Spreeder's replacement rate): a live override given on
# the contract's 0..3 scale is divided by 3 for them.
UNIT_SCALE_KINDS = ("spreeder",)
FALLBACK_MODEL = "default"
_FAULT_FIRED = False


def _fire_fault() -> None:
    """The model_worker_crash fault kills the worker once per process, mid-poem."""
    global _FAULT_FIRED
    _FAULT_FIRED = True
    raise RuntimeError("fault injection: model_worker_crash")


# ---- messages to the worker -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Open:
    id: int
    model: str
    seed: int
    prompt: str
    length: LengthRule
    continue_from: int | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    temperatures: tuple[float, ...]
    override: bool = False
    top_k: int = 0
    top_p: float = 1.0


@dataclass(frozen=True, slots=True)
class Close:
    id: int


@dataclass(frozen=True, slots=True)
class Preload:
    model: str


# ---- messages from the worker -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TokenOut:
    id: int
    token: Token


@dataclass(frozen=True, slots=True)
class Done:
    id: int
    capped: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    id: int | None
    model: str
    error: str
    fallback: str | None  # model used instead, if any


@dataclass(frozen=True, slots=True)
class Loaded:
    model: str
    kind: str
    seconds: float


WorkerIn = Open | Grant | Close | Preload
WorkerOut = TokenOut | Done | Failed | Loaded


class _Req:
    __slots__ = ("id", "gen", "stream", "counter", "credits", "done", "kind")

    def __init__(self, id: int, gen, stream, counter: LengthCounter) -> None:
        self.id = id
        self.gen = gen
        self.stream = stream
        self.counter = counter
        self.credits: deque[tuple[float, int, float]] = deque()
        self.done = False
        self.kind = getattr(gen, "kind", "")


class WorkerCore:
    """The worker's state and logic, free of threads."""

    def __init__(self, emit: Callable[[WorkerOut], None], loader: Callable[[str], object] | None = None) -> None:
        self._emit = emit
        self._models: dict[str, object] = {}
        self._reqs: dict[int, _Req] = {}
        self._order: deque[int] = deque()
        from performance.textgen.threads import use_sampler_threads

        use_sampler_threads()  # one thread by default: a loaded machine must not collapse the sampler
        if loader is None:
            from performance.textgen import load_model

            loader = load_model
        self._loader = loader

    def model(self, name: str):
        """Load (once) and return a model; raise ModelFileError on failure."""
        if name not in self._models:
            t0 = time.perf_counter()
            gen = self._loader(name)
            self._models[name] = gen
            self._emit(Loaded(name, getattr(gen, "kind", "?"), time.perf_counter() - t0))
        return self._models[name]

    def handle(self, msg: WorkerIn) -> None:
        if isinstance(msg, Open):
            self._open(msg)
        elif isinstance(msg, Grant):
            req = self._reqs.get(msg.id)
            if req is not None and not req.done:
                for t in msg.temperatures:
                    if msg.override and req.kind in UNIT_SCALE_KINDS:
                        t = min(1.0, t / 3.0)
                    req.credits.append((t, msg.top_k, msg.top_p))
        elif isinstance(msg, Close):
            self._reqs.pop(msg.id, None)
        elif isinstance(msg, Preload):
            try:
                self.model(msg.model)
            except ModelFileError as e:
                self._emit(Failed(None, msg.model, str(e), None))

    def _open(self, msg: Open) -> None:
        word_tokens_of = lambda g: bool(getattr(g, "word_tokens", False))  # noqa: E731
        if msg.continue_from is not None and msg.continue_from in self._reqs:
            old = self._reqs.pop(msg.continue_from)
            req = _Req(msg.id, old.gen, old.stream, LengthCounter(msg.length, word_tokens_of(old.gen)))
            self._reqs[msg.id] = req
            self._order.append(msg.id)
            return
        try:
            gen = self.model(msg.model)
            used = msg.model
        except ModelFileError as e:
            fallback = FALLBACK_MODEL if msg.model != FALLBACK_MODEL else None
            log.error("model %s failed: %s", msg.model, e)
            gen = None
            if fallback:
                try:
                    gen = self.model(fallback)
                    used = fallback
                except ModelFileError as e2:
                    log.error("fallback model failed too: %s", e2)
            self._emit(Failed(msg.id, msg.model, str(e), used if gen else None))
            if gen is None:
                return
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = gen.start(msg.seed, msg.prompt)
        for w in caught[:1]:
            log.warning("model %s: %s", used, w.message)
        self._reqs[msg.id] = _Req(msg.id, gen, stream, LengthCounter(msg.length, word_tokens_of(gen)))
        self._order.append(msg.id)

    def busy(self) -> bool:
        return any(r.credits and not r.done for r in self._reqs.values())

    def _batched(self) -> int:
        """Step every waiting stream of the same recurrent model together (one matrix product per
        layer for all): several poems written ahead cost little more than one."""
        from performance.textgen.neural import RNNStream, step_streams

        groups: dict[int, list[_Req]] = {}
        for req in self._reqs.values():
            if req.credits and not req.done and isinstance(req.stream, RNNStream) and not req.stream.echo:
                groups.setdefault(id(req.gen), []).append(req)
        made = 0
        for reqs in groups.values():
            if len(reqs) < 2:
                continue
            if faults.active("model_worker_crash") and not _FAULT_FIRED:
                _fire_fault()
            # streams with different top-k/top-p settings are not mixed: take the first's settings
            t0, k0, p0 = reqs[0].credits[0]
            reqs = [r for r in reqs if r.credits[0][1:] == (k0, p0)]
            temps = [r.credits.popleft()[0] for r in reqs]
            for req, tok in zip(reqs, step_streams([r.stream for r in reqs], temps, k0, p0), strict=True):
                self._deliver(req, tok)
                made += 1
        return made

    def _deliver(self, req: _Req, tok: Token) -> None:
        """Send a token; when it completes the poem, say so and stop writing that request."""
        self._emit(TokenOut(req.id, tok))
        if req.counter.feed(tok.text):
            req.done = True
            req.credits.clear()
            self._emit(Done(req.id, capped=req.counter.tokens >= req.counter._cap))

    def work(self, budget: int = 64) -> int:
        """Generate up to `budget` tokens, one per request in turn. Returns tokens made."""
        if len(self._order) > 2 * len(self._reqs) + 16:  # forget closed requests
            self._order = deque(rid for rid in self._order if rid in self._reqs)
        made = 0
        while made < budget:
            n = self._batched()
            if not n:
                break
            made += n
        while made < budget:
            progressed = False
            for _ in range(len(self._order)):
                rid = self._order[0]
                self._order.rotate(-1)
                req = self._reqs.get(rid)
                if req is None:
                    self._order.remove(rid)
                    continue
                if req.done or not req.credits:
                    continue
                if faults.active("model_worker_crash") and not _FAULT_FIRED:
                    _fire_fault()
                t, top_k, top_p = req.credits.popleft()
                self._deliver(req, req.stream.next(t, top_k, top_p))
                made += 1
                progressed = True
                if made >= budget:
                    break
            if not progressed:
                break
        return made

    def pump(self) -> None:
        """Generate everything granted (for the synchronous simulator)."""
        while self.work(4096):
            pass


class GeneratorThread:
    """The live worker: a daemon thread around WorkerCore, restarted by its owner if it dies."""

    def __init__(self, loader: Callable[[str], object] | None = None) -> None:
        self.inbox: queue.Queue[WorkerIn] = queue.Queue()
        self.outbox: queue.Queue[WorkerOut] = queue.Queue()
        self._loader = loader
        self._stop = threading.Event()
        self.restarts = 0
        self.tokens = 0
        self._thread: threading.Thread | None = None
        self.core: WorkerCore | None = None

    def start(self) -> None:
        self.core = WorkerCore(self.outbox.put, self._loader)
        self._thread = threading.Thread(target=self._run, name="lectern-generator", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def restart(self) -> None:
        """Start a fresh worker after a crash or a stall, on fresh queues (a stalled thread may still
        hold the old ones); open requests are gone and the engine re-opens its poems."""
        self.restarts += 1
        if self.core is not None:
            self._stop.set()
            self.inbox.put(Close(-1))
        self._stop = threading.Event()
        self.inbox = queue.Queue()
        self.outbox = queue.Queue()
        self.start()

    def send(self, msg: WorkerIn) -> None:
        self.inbox.put(msg)

    def stop(self) -> None:
        self._stop.set()
        self.inbox.put(Close(-1))

    def _run(self) -> None:
        core, stop, inbox = self.core, self._stop, self.inbox
        assert core is not None
        try:
            while not stop.is_set():
                block = not core.busy()
                try:
                    msg = inbox.get(block=block, timeout=0.5 if block else None)
                    core.handle(msg)
                    while True:  # drain everything waiting before generating more
                        core.handle(inbox.get_nowait())
                except queue.Empty:
                    pass
                self.tokens += core.work(8)
        except Exception:
            log.exception("generator worker died")
