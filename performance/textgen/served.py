"""The `served` kind: a model that an existing serving engine runs (llama.cpp, vLLM, Ollama, SGLang).

Lectern grows no inference server of its own. It speaks the API those engines share: OpenAI-
compatible completions or chat completions with server-sent-event streaming and per-token logprobs.
The card holds no weights, only the endpoint and how to ask:

    {"kind": "served", "name": "smollm2", "base_url": "http://127.0.0.1:8080/v1",
     "api": "completions" | "chat", "model": "smollm2", "api_key_env": "",   (optional)
     "system": "You write short unrhymed poems.", "template": "...{system}...{prompt}...",
     "prompt": "default user prompt", "stop": ["<|im_end|>"], "timeout": 2.0, "max_tokens": 400,
     "continuation": 16, "top_logprobs": 3, "patience_s": 5, "extra": {...}}  (optional keys)

`patience_s` is how long the stage waits for the next token, the first of a poem included, whatever
the server sends meanwhile (a keep-alive comment each second resets `timeout` but not this): past
it the model counts as down, the fallback writes, and the model is retried in the background. A
server that serves exactly one model is played under that model's id when the card's `model`
differs (llama.cpp started without --model_alias names it by its file's path); a server with
several models must have the card's.

A poem is written as a chain of short continuations (`continuation` tokens each): each request
carries the temperature of that moment and a seed derived from the poem seed and the request
number, so a performer's temperature change shows within one continuation and a poem is
reproducible where the server is deterministic. Tokens are read lazily from the open stream, one
per `next()`, so the worker's bounded look-ahead holds.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from performance.textgen.base import ModelFileError, SequentialBatch, ServedError, Token
from performance.textgen.sse import Endpoint, TokenClock

log = logging.getLogger("lectern.served")

APIS = ("completions", "chat")
PATIENCE_S = 5.0  # the default longest wait for a served token before the fallback writes
CHATML = ("<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n"
          "<|im_start|>assistant\n")
_KEYS = {"kind", "name", "base_url", "api", "model", "api_key_env", "system", "template", "prompt", "stop",
         "timeout", "first_token_timeout", "max_tokens", "continuation", "top_logprobs", "extra", "context_chars", "retry_s",
         "patience_s",
         "description", "licence", "license", "engine_version", "format"}


def _card_error(path: Path, key: str, value: object, allowed: str) -> ModelFileError:
    shown = repr(value)
    return ModelFileError(f"{path}: key '{key}' = {shown if len(shown) < 60 else shown[:57] + '...'}: {allowed}")


def validate_card(card: dict, path: Path) -> dict:
    """Check a served card; return it with defaults filled in. Errors name the file, key and value."""
    if "api_key" in card:
        raise _card_error(path, "api_key", "***", "never store a key in the card: name an environment variable "
                                                  "in 'api_key_env'")
    for k in card:
        if k not in _KEYS:
            raise _card_error(path, k, card[k], f"unknown key; known: {', '.join(sorted(_KEYS))}")
    out = dict(card)

    def need_str(k: str, default: str | None = None, choices: tuple[str, ...] | None = None) -> None:
        v = out.get(k, default)
        if not isinstance(v, str) or (default is None and not v):
            raise _card_error(path, k, v, "a non-empty string" + (f" ({', '.join(choices)})" if choices else ""))
        if choices and v not in choices:
            raise _card_error(path, k, v, f"allowed: {', '.join(choices)}")
        out[k] = v

    def need_num(k: str, default: float, lo: float, hi: float, integer: bool = False) -> None:
        v = out.get(k, default)
        ok = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok or not lo <= v <= hi:
            raise _card_error(path, k, v, f"a {'whole ' if integer else ''}number from {lo:g} to {hi:g}")
        out[k] = v

    need_str("base_url")
    try:
        Endpoint(out["base_url"])
    except ValueError as e:
        raise _card_error(path, "base_url", out["base_url"], str(e).split(": ", 1)[-1]) from None
    need_str("api", "completions", APIS)
    need_str("model")
    need_str("api_key_env", "")
    need_str("system", "You write short unrhymed poems.")
    need_str("template", CHATML if out["api"] == "completions" else "{prompt}")
    if "{prompt}" not in out["template"]:
        raise _card_error(path, "template", out["template"], "must contain {prompt}")
    need_str("prompt", "Write a short poem.")
    stop = out.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise _card_error(path, "stop", stop, "a list of up to 4 non-empty strings")
    out["stop"] = stop
    need_num("timeout", 5.0, 0.1, 600.0)
    need_num("first_token_timeout", 30.0, 0.1, 3600.0)
    need_num("max_tokens", 512, 1, 100000, integer=True)
    need_num("continuation", 16, 1, 4096, integer=True)
    need_num("top_logprobs", 3, 0, 20, integer=True)
    need_num("context_chars", 4000, 100, 1_000_000, integer=True)
    need_num("retry_s", 1.0, 0.1, 60.0)
    need_num("patience_s", PATIENCE_S, 0.5, 600.0)
    extra = out.get("extra", {})
    if not isinstance(extra, dict):
        raise _card_error(path, "extra", extra, "a table of extra request-body fields (e.g. {\"cache_prompt\": false})")
    out["extra"] = extra
    return out


def request_seed(poem_seed: int, n: int) -> int:
    """The seed of request n of a poem: a fixed mix of both, in 0..2**31-1."""
    x = (poem_seed * 0x9E3779B1 + n * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 29
    x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 32)) & 0x7FFFFFFF


class ServedGenerator:
    """A Generator whose tokens come from an OpenAI-compatible server.

    `up` says whether the endpoint answered last time: after a failure it is False and a watcher
    thread asks the server for its models every `retry_s` seconds until it answers and serves the
    model again (the worker meanwhile writes with the fallback model and checks `up` per poem).
    """

    kind = "served"
    word_tokens = False

    def __init__(self, name: str, card: dict, folder: Path | None = None) -> None:
        self.name = name
        self.card = card
        self.folder = folder
        key = os.environ.get(card["api_key_env"]) if card["api_key_env"] else None
        self.endpoint = Endpoint(card["base_url"], key, float(card["timeout"]), float(card["first_token_timeout"]))
        self.api = card["api"]
        self.model_id = card["model"]
        self.served_id = self.model_id  # the id requests carry: the server's own where it serves one model
        self.patience = float(card["patience_s"])
        self.deadline: float | None = None  # a time.monotonic() instant no wait may pass (a check's end)
        self.max_tokens = int(card["max_tokens"])
        self.continuation = int(card["continuation"])
        self._verified = False
        self._up = threading.Event()
        self._up.set()
        self.last_error = ""
        self._watch_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self.rate = 0.0  # tokens/s of the last continuation, from its first token to its last

    # ---- health ---------------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        """False from a failure until the server answers again."""
        return self._up.is_set()

    def probe(self, timeout: float | None = None) -> str:
        """Ask the server for its models; return a one-line description. Raises ServedError when the
        endpoint does not answer or does not serve this card's model.

        A server that serves exactly one model under another id is taken at its word (llama.cpp
        without --model_alias names its model by the file's path): requests carry that id, and the
        substitution is logged once. A server with several models must serve the card's."""
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ServedError(f"{self.endpoint.base_url}/models: no answer before the deadline")
            timeout = min(self.endpoint.timeout if timeout is None else timeout, left)
        data = self.endpoint.get_json("/models", timeout)
        models = data.get("data")
        if not isinstance(models, list):
            raise ServedError(f"{self.endpoint.base_url}/models: the answer has no model list ('data'), "
                              f"not what an OpenAI-compatible server sends")
        ids = [m.get("id") for m in models if isinstance(m, dict) and isinstance(m.get("id"), str) and m.get("id")]
        if self.model_id in ids:
            self.served_id = self.model_id
            return f"{self.endpoint.base_url} answers and serves {self.model_id!r}"
        if len(ids) == 1 and len(models) == 1:
            if self.served_id != ids[0]:
                log.warning("served model %s: %s serves one model, %r, not %r: playing that one", self.name,
                            self.endpoint.base_url, ids[0], self.model_id)
                self.served_id = ids[0]
            return (f"{self.endpoint.base_url} answers and serves one model, {ids[0]!r} (the card names "
                    f"{self.model_id!r}): played as {self.name}")
        shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
        raise ServedError(f"{self.endpoint.base_url}/models: the server serves {shown or 'no models'}, "
                          f"not {self.model_id!r}")

    def writes(self) -> None:
        """Ask for one token of a fresh poem and wait for the answer within the patience: raises
        ServedError where the server answers /models but does not write (a stalled stream)."""
        route, body = self.request(self.card["prompt"], "", 0.0, 0, 1.0, 0, 1, fresh=True)
        clock = self.clock()
        clock.restart()
        events = self.endpoint.stream(route, body, clock)
        try:
            for _ in events:
                pass
        finally:
            events.close()

    def clock(self) -> TokenClock:
        """The patience of one wait for a token, bounded by the generator's deadline if it has one."""
        return TokenClock(self.patience, self.deadline)

    def verify(self) -> None:
        """Probe once before the first request (a server may quietly serve another model)."""
        if not self._verified:
            self.probe()
            self._verified = True

    def mark_down(self, error: str) -> None:
        """Record a failure and start watching for the server's return."""
        self.last_error = error
        self._verified = False
        self._up.clear()
        with self._watch_lock:
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch, name=f"lectern-served-{self.name}", daemon=True)
                self._watcher.start()

    def _watch(self) -> None:
        retry = float(self.card["retry_s"])
        while not self._up.is_set():
            t0 = time.monotonic()
            try:
                self.probe(timeout=max(retry, 0.5))
                self.writes()  # answering /models is not enough: a stalled stream answers it too
                self._verified = True
                log.warning("served model %s: %s again", self.name, self.endpoint.base_url)
                self._up.set()
                return
            except ServedError:
                pass
            time.sleep(max(0.0, retry - (time.monotonic() - t0)))

    # ---- generation -----------------------------------------------------------------------------
    def start(self, seed: int, prompt: str = "") -> ServedStream:
        return ServedStream(self, seed, prompt or self.card["prompt"])

    def start_batch(self, seeds: list[int], prompts: list[str] | None = None) -> SequentialBatch:
        prompts = prompts or [""] * len(seeds)
        return SequentialBatch([self.start(s, p) for s, p in zip(seeds, prompts, strict=True)])

    def request(self, prompt: str, text: str, temperature: float, top_k: int, top_p: float, seed: int,
                max_tokens: int, fresh: bool = False) -> tuple[str, dict]:
        """The route and body of one streamed continuation of `text` (the poem so far)."""
        c = self.card
        user = c["template"].replace("{system}", c["system"]).replace("{prompt}", prompt)
        ctx = "" if fresh else text[-int(c["context_chars"]):]
        body: dict = {"model": self.served_id, "stream": True, "max_tokens": max_tokens,
                      "temperature": max(0.0, float(temperature)), "top_p": float(top_p), "seed": seed}
        if top_k:
            body["top_k"] = int(top_k)
        if c["stop"]:
            body["stop"] = list(c["stop"])
        n_top = int(c["top_logprobs"])
        if self.api == "completions":
            route = "/completions"
            body["prompt"] = user + ctx
            body["logprobs"] = max(1, n_top)
        else:
            route = "/chat/completions"
            messages = [{"role": "system", "content": c["system"]}, {"role": "user", "content": user}]
            if ctx:
                messages.append({"role": "assistant", "content": ctx})
                body["continue_final_message"] = True  # vLLM / SGLang: continue the poem, not a new turn
                body["add_generation_prompt"] = False
            body["messages"] = messages
            body["logprobs"] = True
            if n_top:
                body["top_logprobs"] = n_top
        body.update(c["extra"])
        return route, body


class ServedStream:
    """One poem from a served model: lazy continuations, one token per next()."""

    def __init__(self, gen: ServedGenerator, seed: int, prompt: str) -> None:
        self.gen = gen
        self.seed = seed
        self.prompt = prompt
        self.text = ""
        self.requests = 0
        self.tokens = 0
        self.continuation = gen.continuation
        self._buf: deque[Token] = deque()
        self._events: Iterator[dict] | None = None
        self._temperature = 0.0
        self._fresh = False  # the model ended its poem: the next request starts a new stanza afresh
        self._t_first = 0.0
        self._n_cont = 0
        self._clock = gen.clock()

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        """The next token. Raises ServedError when the server fails, and when no token comes within
        the card's patience (keep-alive bytes and token-less events do not count)."""
        if not self._buf:
            self._clock.restart()
        while not self._buf:
            try:
                if self._events is None:
                    self._begin(temperature, top_k, top_p)
                self._pull()
            except ServedError:
                self.close()  # a later next() starts a fresh request
                raise
        tok = self._buf.popleft()
        self.text += tok.text
        self.tokens += 1
        return tok

    def close(self) -> None:
        """Close the open continuation's connection, if any (a later next() opens a new one)."""
        events, self._events = self._events, None
        if events is not None:
            events.close()

    def _begin(self, temperature: float, top_k: int, top_p: float) -> None:
        g = self.gen
        if not g._verified:
            left = self._clock.left()
            if left is not None and left <= 0:
                raise ServedError(f"{g.endpoint.base_url}: {self._clock.why}")
            g.probe(min(g.endpoint.timeout, left) if left is not None else None)
            g._verified = True
        self._temperature = max(0.0, float(temperature))
        route, body = g.request(self.prompt, self.text, self._temperature, top_k, top_p,
                                request_seed(self.seed, self.requests), self.continuation, self._fresh)
        self.requests += 1
        self._fresh = False
        self._n_cont = 0
        self._events = g.endpoint.stream(route, body, self._clock)

    def _pull(self) -> None:
        """Read events until at least one token is buffered or the continuation ends."""
        assert self._events is not None
        g = self.gen
        for event in self._events:
            choices = event.get("choices")
            if not isinstance(choices, list) or not choices:
                continue  # usage-only or role-only chunks
            ch = choices[0]
            if not isinstance(ch, dict):
                raise ServedError(f"{g.endpoint.base_url}: malformed event (choices[0] is not an object)")
            toks = self._tokens(ch)
            finish = ch.get("finish_reason")
            if toks:
                if self._n_cont == 0:
                    self._t_first = time.perf_counter()
                self._n_cont += len(toks)
                self._buf.extend(toks)
            if finish:
                self._finish(finish)
                return
            if toks:
                return
        self._finish("length")  # [DONE] without a finish_reason

    def _finish(self, reason: str) -> None:
        self.close()
        if self._n_cont > 1:
            dt = time.perf_counter() - self._t_first
            if dt > 0:
                self.gen.rate = (self._n_cont - 1) / dt
        if reason != "length":  # the model ended its poem (end of text or a stop string): a new stanza
            self._fresh = True
            pending = self.text + "".join(t.text for t in self._buf)
            breaks = "\n" if pending.endswith("\n") else "\n\n"
            self._buf.extend(Token(c, 1.0, self._temperature) for c in breaks)

    def _tokens(self, ch: dict) -> list[Token]:
        """The tokens of one event: from its logprobs where given, else its text as one token."""
        g = self.gen
        if g.api == "completions":
            text = ch.get("text")
        else:
            delta = ch.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise ServedError(f"{g.endpoint.base_url}: malformed event (text is {type(text).__name__})")
        pairs = _logprob_pairs(ch.get("logprobs"), g.api, int(g.card["top_logprobs"]))
        t = self._temperature
        if pairs and "".join(p[0] for p in pairs) == text:
            return [Token(s, _p(lp), t, top) for s, lp, top in pairs if s]
        if not text:
            return []
        if pairs:  # token texts do not join to the text (a split UTF-8 character): one token, joint p
            return [Token(text, _p(sum(lp for _, lp, _ in pairs)), t, pairs[0][2])]
        return [Token(text, 1.0, t)]


def _p(logprob: float | None) -> float:
    if logprob is None or not isinstance(logprob, int | float) or math.isnan(logprob):
        return 1.0
    return min(1.0, max(1e-12, math.exp(logprob)))


def _logprob_pairs(lp: object, api: str, n_top: int) -> list[tuple[str, float, tuple[tuple[str, float], ...] | None]]:
    """(token text, logprob, top alternatives) for each token an event's logprobs describe; at most
    n_top alternatives (a server may add the sampled token to its top list)."""
    if not isinstance(lp, dict):
        return []
    out = []
    if api == "chat" or "content" in lp:
        for item in lp.get("content") or []:
            if not isinstance(item, dict) or not isinstance(item.get("token"), str):
                continue
            top = [(a["token"], _p(a.get("logprob"))) for a in item.get("top_logprobs") or []
                   if isinstance(a, dict) and isinstance(a.get("token"), str)]
            out.append((item["token"], item.get("logprob", 0.0), _sorted(top, n_top)))
        return out
    tokens, lps, tops = lp.get("tokens") or [], lp.get("token_logprobs") or [], lp.get("top_logprobs") or []
    for i, s in enumerate(tokens):
        if not isinstance(s, str):
            continue
        top_d = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        top = [(k, _p(v)) for k, v in top_d.items()]
        out.append((s, lps[i] if i < len(lps) else 0.0, _sorted(top, n_top)))
    return out


def _sorted(top: list[tuple[str, float]], n_top: int) -> tuple[tuple[str, float], ...] | None:
    return tuple(sorted(top, key=lambda a: -a[1])[:n_top]) if top and n_top else None


def load_served(model_dir: Path, card: dict) -> ServedGenerator:
    """Load a served card (no weights; nothing contacts the server yet)."""
    card = validate_card(card, model_dir / "model.json")
    return ServedGenerator(model_dir.name, card, model_dir)
