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
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path

from performance import faults
from performance.protocol.commands import MAX_TEMPERATURE
from performance.protocol.worker import (
    FALLBACK_MODEL,
    Close,
    Done,
    Failed,
    Force,
    Grant,
    Loaded,
    Neuron,
    Open,
    Opened,
    Prefix,
    Preload,
    ServedState,
    TokenOut,
    Train,
    Waiting,
    WorkerIn,
    WorkerOut,
)
from performance.textgen import cards, load_model
from performance.textgen.base import ModelFileError, ServedError, Token
from performance.textgen.cards import resolve_model_dir
from performance.textgen.kinds import kind as kind_entry
from performance.textgen.lengths import LengthCounter
from performance.textgen.live import Follower, Trainer
from performance.textgen.vintages import checkpoint_label, split_ref
from performance.worker.cowrite import cowrite_spec, cowrite_stream, force

log = logging.getLogger("lectern.generator")

MAX_FAILURES = 3  # a model that fails this many poems in a row is replaced by the fallback for the session
FOLLOW_WAIT_S = 180.0  # a trainer started by the scene needs torch and its corpus before its step 0
_FAULT_FIRED = False


def _fire_fault() -> None:
    """The model_worker_crash fault kills the worker once per process, mid-poem."""
    global _FAULT_FIRED
    _FAULT_FIRED = True
    raise RuntimeError("fault injection: model_worker_crash")


def _word_tokens(gen) -> bool:
    return bool(getattr(gen, "word_tokens", False))


class _Req:
    __slots__ = ("id", "gen", "stream", "counter", "credits", "done", "kind", "temperature_scale", "model", "seed", "prompt", "open")

    def __init__(self, id: int, gen, stream, counter: LengthCounter, model: str = "", seed: int = 0,
                 prompt: str = "", open: Open | None = None) -> None:
        self.model, self.seed, self.prompt, self.open = model, seed, prompt, open
        self.id = id
        self.gen = gen
        self.stream = stream
        self.counter = counter
        self.credits: deque[tuple[float, int, float]] = deque()
        self.done = False
        self.kind = getattr(gen, "kind", "")
        entry = kind_entry(self.kind)
        self.temperature_scale = entry.temperature_scale if entry is not None else MAX_TEMPERATURE


class WorkerCore:
    """The worker's state and logic, free of threads."""

    def __init__(self, emit: Callable[[WorkerOut], None], loader: Callable[[str], object] | None = None) -> None:
        self._emit = emit
        self._models: dict[str, object] = {}
        self._reqs: dict[int, _Req] = {}
        self._order: deque[int] = deque()
        self._served_up: dict[str, bool] = {}  # what the engine was last told about each served model
        # lazy: this pulls in torch (~1.5 s); only the paths that run a neural model pay for it
        from performance.textgen.threads import use_sampler_threads

        use_sampler_threads()  # one thread by default: a loaded machine must not collapse the sampler
        if loader is None:
            loader = load_model
        self._loader = loader
        self._failures: dict[str, int] = {}  # model -> poems failed in a row
        self._broken: set[str] = set()  # models replaced by the fallback for the rest of the session
        self._followers: dict[str, object] = {}  # "DIR@follow" → live.Follower
        self._trainers: dict[str, object] = {}  # out folder → live.Trainer
        self.follow_wait_s: float | None = None  # tests shorten the wait for a first checkpoint

    def _writing_failed(self, name: str, error: str) -> str | None:
        """A model raised while writing: count it (one log line at the first failure and one when it is
        given up), and say which model takes over (None = none can)."""
        n = self._failures[name] = self._failures.get(name, 0) + 1
        fallback = FALLBACK_MODEL if name != FALLBACK_MODEL and FALLBACK_MODEL not in self._broken else None
        if n == 1:
            log.error("model %s failed while writing: %s; this poem goes on with %s", name, error, fallback or "nothing")
        if n >= MAX_FAILURES and name not in self._broken:
            self._broken.add(name)
            self._models.pop(name, None)
            log.error("model %s failed %d poems in a row; %s writes in its place for the rest of the session",
                      name, n, fallback or "no model")
        return fallback

    def _restart_on(self, req: _Req, error: Exception) -> None:
        """Continue a request whose model raised on the fallback model, or end it (Failed, no fallback)."""
        fallback = self._writing_failed(req.model, f"{type(error).__name__}: {error}")
        gen = None
        if fallback is not None:
            try:
                gen = self.model(fallback)
                req.stream = gen.start(req.seed, req.prompt)
            except Exception as e2:
                log.error("fallback model failed too: %s", e2)
                gen = None
        self._emit(Failed(req.id, req.model, f"{type(error).__name__}: {error}", fallback if gen else None))
        if gen is None:
            req.done = True
            req.credits.clear()
            self._reqs.pop(req.id, None)
            return
        req.gen, req.model, req.kind = gen, fallback, getattr(gen, "kind", "")

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
                scale = req.temperature_scale
                for t in msg.temperatures:
                    if msg.override and scale != MAX_TEMPERATURE:
                        # a live override comes on the contract's 0..3 scale: map it onto the kind's
                        # own (Spreeder's "temperature" is its 0..1 replacement rate)
                        t = min(scale, t * scale / MAX_TEMPERATURE)
                    req.credits.append((t, msg.top_k, msg.top_p))
        elif isinstance(msg, Close):
            self._reqs.pop(msg.id, None)
        elif isinstance(msg, Force):  # co-writing: go on from the chosen word (worker/cowrite.py)

            force(self, msg)
        elif isinstance(msg, Neuron):
            for req in self._reqs.values():
                if hasattr(req.stream, "set_unit"):
                    req.stream.set_unit(msg.unit)
        elif isinstance(msg, Prefix):  # the pretrained kind's poet, from each open stream's next line
            for req in self._reqs.values():
                if hasattr(req.stream, "set_prefix"):
                    req.stream.set_prefix(msg.text)
        elif isinstance(msg, Train):
            self._train(msg.spec)
        elif isinstance(msg, Preload):
            if msg.model.endswith("@follow"):  # followed between poems, loaded when a poem opens
                return
            try:
                self.model(msg.model)
            except ModelFileError as e:
                self._emit(Failed(None, msg.model, str(e), None))

    def _open(self, msg: Open) -> None:
        """A poem's request: continue a stream, or resolve its model (falling back) and start one."""
        if msg.continue_from is not None and msg.continue_from in self._reqs:
            self._continue(msg)
            return
        resolved = self._resolve(msg)
        if resolved is None:
            return
        gen, used, label, curve, served_down = resolved
        req = _Req(msg.id, gen, None, LengthCounter(msg.length, _word_tokens(gen)), used, msg.seed, msg.prompt, msg)
        if not self._start_stream(req, msg, used, served_down):
            return
        self._cap(req)
        self._reqs[msg.id] = req
        self._order.append(msg.id)
        if msg.xray is not None or label is not None:
            self._emit(Opened(msg.id, label, curve, getattr(req.stream, "unit_index", None)))

    def _continue(self, msg: Open) -> None:
        """The next poem goes on where the last one's stream stopped (a scene's `continue`)."""
        old = self._reqs.pop(msg.continue_from)
        req = _Req(msg.id, old.gen, old.stream, LengthCounter(msg.length, _word_tokens(old.gen)), old.model,
                   old.seed, old.prompt, old.open)
        self._cap(req)
        self._reqs[msg.id] = req
        self._order.append(msg.id)

    def _resolve(self, msg: Open):
        """(generator, model used, checkpoint label, loss curve, served model down) for a request, the
        scene's fallback standing in for a broken or down model; None when nothing can write."""
        label, curve = None, ()
        try:
            if msg.model in self._broken:
                raise ModelFileError(f"failed {MAX_FAILURES} poems in a row; replaced for this session")
            if msg.model.endswith("@follow"):
                gen, label, curve = self._follow(msg.model, msg.id)
            else:
                gen = self.model(msg.model)
                if "@" in msg.model:  # a vintage: the caption says which step and how good it was
                    label = checkpoint_label(msg.model, getattr(gen, "card", {}) or {})
            if getattr(gen, "kind", "") == "served":
                self._served_check(msg.model, gen)
                self._preload_fallback(msg.fallback)
                if not gen.up:
                    raise ServedError(f"still down: {gen.last_error}")
            return gen, msg.model, label, curve, False
        except (ModelFileError, ServedError) as e:
            gen, used = self._fall_back(msg, e)
            return (gen, used, label, curve, isinstance(e, ServedError)) if gen is not None else None

    def _fall_back(self, msg: Open, e: Exception):
        """The scene's fallback for a model that failed: (generator or None, its name), said once."""
        fallback = msg.fallback if msg.model != msg.fallback else None
        if isinstance(e, ServedError):  # already logged once when it went down; the watcher logs its return
            log.info("served model %s %s; %s writes this poem", msg.model, e, fallback)
        elif msg.model not in self._broken:
            log.error("model %s failed: %s", msg.model, e)
        gen, used = None, msg.model
        if fallback:
            try:
                gen, used = self.model(fallback), fallback
            except ModelFileError as e2:
                log.error("fallback model failed too: %s", e2)
        self._emit(Failed(msg.id, msg.model, str(e), used if gen else None))
        return gen, used

    def _start_stream(self, req: _Req, msg: Open, used: str, served_down: bool) -> bool:
        """Open the request's stream (an x-ray one when the scene shows it); False when it failed
        and the request is gone. A model's warnings at start are logged once."""

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if msg.xray is not None or msg.cowrite:  # co-writing reads the x-ray's top-k
                    # lazy: numpy and the sound/x-ray code load only when that part starts
                    from performance.textgen.xray import start_xray

                    req.stream = start_xray(req.gen, msg.seed, msg.prompt, cowrite_spec(msg) if msg.cowrite else msg.xray)
                else:
                    # a served model's prompt is an instruction ("Write a poem about..."), not the poem's words
                    req.stream = req.gen.start(msg.seed, "" if served_down else msg.prompt)
            except Exception as e:  # a model that loads but cannot write must not take the worker down
                self._reqs[msg.id] = req
                self._restart_on(req, e)
                if msg.id not in self._reqs:
                    return False
        stream = req.stream
        if hasattr(stream, "set_originality"):
            stream.set_originality(msg.originality)
        if msg.prefix is not None and hasattr(stream, "set_prefix"):
            stream.set_prefix(msg.prefix)
        for w in caught[:1]:
            log.warning("model %s: %s", used, w.message)
        if msg.continuation and hasattr(stream, "continuation"):
            stream.continuation = msg.continuation
        if msg.cowrite:

            req.stream = cowrite_stream(stream, req.gen, msg)
        return True

    def _follow(self, name: str, rid: int = 0):
        """The newest readable checkpoint of a run (reloaded between poems), its label and curve."""

        f = self._followers.get(name)
        if f is None:
            base = split_ref(name)[0]
            try:
                base_dir = resolve_model_dir(base)
            except ModelFileError:  # not written yet: the trainer will create it
                base_dir = Path(base) if ("/" in base or Path(base).is_absolute()) else cards.MODELS_DIR / base
            f = self._followers[name] = Follower(name, base_dir)
        before = f.step
        beat = lambda: self._emit(Waiting(rid, f"waiting for the first checkpoint in {f.base}"))  # noqa: E731
        wait = FOLLOW_WAIT_S if self.follow_wait_s is None else self.follow_wait_s
        gen = f.current(self._loader, wait, on_wait=beat)
        if f.step != before:
            self._emit(Loaded(f"{name} step {f.step}", getattr(gen, "kind", "?"), 0.0))
        return gen, f.label(), f.curve()

    def _train(self, spec) -> None:
        t = self._trainers.get(spec.out)
        if t is not None and t.running():
            return
        t = self._trainers[spec.out] = Trainer(spec)
        try:
            t.start()
        except OSError as e:
            log.error("training on stage could not start: %s", e)

    def stop_training(self) -> None:
        """Stop every trainer this worker started."""
        for t in self._trainers.values():
            t.stop()

    def _preload_fallback(self, name: str) -> None:
        """Load a served model's fallback before it is needed, so a failure hands over at once."""
        if name not in self._models:
            try:
                self.model(name)
            except ModelFileError as e:
                log.error("fallback model %s cannot be loaded: %s", name, e)

    @staticmethod
    def _cap(req: _Req) -> None:
        """A served card's max_tokens per poem tightens the length rule's own cap."""
        cap = getattr(req.gen, "max_tokens", None)
        if cap:
            req.counter._cap = min(req.counter._cap, int(cap))

    def _served_check(self, name: str, gen) -> None:
        """Tell the engine when a served model that was down answers again."""
        if gen.up and self._served_up.get(name) is False:
            self._served_up[name] = True
            self._emit(ServedState(name, True, f"{gen.endpoint.base_url} answers again", gen.rate))

    def _next(self, req: _Req, t: float, top_k: int, top_p: float) -> Token:
        """The next token of a request; a served model that fails hands the rest of the poem to the
        fallback model (one log line naming the endpoint and the failure)."""
        try:
            tok = req.stream.next(t, top_k, top_p)
        except ServedError as e:
            return self._fail_over(req, str(e), t, top_k, top_p)
        if req.kind == "served" and req.counter.tokens % 16 == 0:
            name = req.open.model if req.open else req.gen.name
            self._served_up[name] = True
            self._emit(ServedState(name, True, req.gen.endpoint.base_url, req.gen.rate))
        return tok

    def _fail_over(self, req: _Req, error: str, t: float, top_k: int, top_p: float) -> Token:
        gen, o = req.gen, req.open
        name = o.model if o else gen.name
        fallback = o.fallback if o else FALLBACK_MODEL
        gen.mark_down(error)
        self._served_up[name] = False
        log.error("served model %s failed: %s; writing with %s until it answers again", name, error, fallback)
        self._emit(ServedState(name, False, error, 0.0))
        try:
            fb = self.model(fallback)
        except ModelFileError as e2:
            log.error("fallback model %s failed too: %s", fallback, e2)
            self._emit(Failed(req.id, name, error, None))
            req.done = True
            req.credits.clear()
            raise ServedError(error) from None
        self._emit(Failed(req.id, name, error, fallback))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the served text may hold characters the fallback lacks
            stream = fb.start(o.seed if o else 0, "")  # a prompt would be echoed: the fallback starts afresh
        req.gen, req.stream, req.kind = fb, stream, getattr(fb, "kind", "")
        if req.counter.text and not req.counter.text.endswith("\n"):
            return Token("\n", 1.0, t)  # on a new line, not glued to the served model's last word
        return stream.next(t, top_k, top_p)

    def busy(self) -> bool:
        return any(r.credits and not r.done for r in self._reqs.values())

    def _batched(self) -> int:
        """Step every waiting stream of the same recurrent model together (one matrix product per
        layer for all): several poems written ahead cost little more than one."""

        if "performance.textgen.neural" not in sys.modules:  # no neural model loaded: nothing to batch,
            return 0  # and a served or Markov scene need not wait for torch to import
        # lazy: this pulls in torch (~1.5 s); only the paths that run a neural model pay for it
        from performance.textgen.neural import RNNStream, step_streams

        groups: dict[int, list[_Req]] = {}
        for req in self._reqs.values():
            # exactly RNNStream: x-ray streams (a subclass) step alone, reporting what they saw
            if req.credits and not req.done and type(req.stream) is RNNStream and not req.stream.echo:
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
            try:
                toks = step_streams([r.stream for r in reqs], temps, k0, p0)
            except Exception as e:
                for req in reqs:
                    self._restart_on(req, e)
                continue
            for req, tok in zip(reqs, toks, strict=True):
                self._deliver(req, tok)
                made += 1
        return made

    def _deliver(self, req: _Req, tok: Token) -> None:
        """Send a token; when it completes the poem, say so and stop writing that request."""
        self._emit(TokenOut(req.id, tok))
        if req.counter.feed(tok.text):
            self._failures.pop(req.model, None)  # it wrote a whole poem: failures are no longer in a row
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
                try:
                    tok = self._next(req, t, top_k, top_p)
                    if not isinstance(tok.text, str):
                        raise TypeError(f"token text is {type(tok.text).__name__}, not text")
                except ServedError:  # no fallback either: this poem ends, the show goes on
                    continue
                except Exception as e:  # contained: the poem goes on with the fallback, the worker lives
                    req.credits.appendleft((t, top_k, top_p))
                    self._restart_on(req, e)
                    continue
                self._deliver(req, tok)
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
