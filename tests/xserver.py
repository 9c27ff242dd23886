"""A real X server for tests: Xvfb (optionally with openbox), screenshots from the server itself
(ImageMagick's `import -window root`), window ids from `xwininfo`, keys through XTEST (`xdotool`).

Nothing here draws with our own code: what these helpers see is what an audience would see.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

TOOLS = ("Xvfb", "import", "xdotool", "xwininfo", "openbox")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


class XServer:
    """Xvfb on a free display number, torn down with everything started on it."""

    def __init__(self, width: int = 1920, height: int = 1080, window_manager: bool = False) -> None:
        self.size = (width, height)
        self.window_manager = window_manager
        self.procs: list[subprocess.Popen] = []
        self.display = ""

    def __enter__(self) -> XServer:
        r, w = os.pipe()
        xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", f"{self.size[0]}x{self.size[1]}x24",
                                 "-nolisten", "tcp", "-noreset"], pass_fds=(w,), stderr=subprocess.DEVNULL)
        os.close(w)
        self.procs.append(xvfb)
        with os.fdopen(r) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"
        if self.window_manager:
            self.procs.append(subprocess.Popen(["openbox", "--sm-disable"], env=self.env(),
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "WAYLAND_DISPLAY")}
        env.update(DISPLAY=self.display, SDL_VIDEODRIVER="x11", SDL_AUDIODRIVER="dummy", **extra)
        return env

    def run(self, *cmd: str, timeout: float = 10) -> str:
        return subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=timeout).stdout

    def screenshot(self, save: Path | None = None) -> np.ndarray:
        """The root window as the X server holds it: an (height, width, 3) uint8 array."""
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "root.ppm"
            subprocess.run(["import", "-window", "root", "-depth", "8", str(path)], env=self.env(), check=True,
                           timeout=20, capture_output=True)
            if save is not None:
                subprocess.run(["convert", str(path), str(save)], check=True, timeout=20)
            return read_ppm(path)

    def windows(self, name: str = "Lectern") -> list[dict]:
        """Windows called `name`: id and geometry (as xwininfo sees them). A tree walk that races a
        window manager's reparenting can fail (BadWindow): it is tried again."""
        for _ in range(5):
            found = self._windows(name)
            if found:
                return found
            time.sleep(0.1)
        return []

    def _windows(self, name: str) -> list[dict]:
        out = self.run("xwininfo", "-root", "-tree")
        found = []
        for m in re.finditer(r"(0x[0-9a-f]+) \"([^\"]*)\".*?(\d+)x(\d+)\+(-?\d+)\+(-?\d+)\s+\+(-?\d+)\+(-?\d+)", out):
            if m.group(2) == name:
                found.append({"id": int(m.group(1), 16), "w": int(m.group(3)), "h": int(m.group(4)),
                              "x": int(m.group(7)), "y": int(m.group(8))})
        return found

    def wait_window(self, name: str = "Lectern", timeout: float = 30) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            w = self.windows(name)
            if w:
                return w[0]
            time.sleep(0.1)
        raise TimeoutError(f"no window called {name!r} within {timeout} s")

    def key(self, *keys: str, window: int | None = None) -> None:
        """Real key presses through XTEST, to the focused window (focused first if given)."""
        if window is not None:
            self.run("xdotool", "windowfocus", "--sync", str(window))
        self.run("xdotool", "key", "--delay", "60", *keys)


def read_ppm(path: Path) -> np.ndarray:
    data = path.read_bytes()
    parts = data.split(maxsplit=4)
    if parts[0] != b"P6":
        raise ValueError(f"{path}: not a binary PPM")
    w, h, maxval = int(parts[1]), int(parts[2]), int(parts[3])
    if maxval != 255:
        raise ValueError(f"{path}: {maxval}-valued PPM")
    pixels = np.frombuffer(parts[4][: w * h * 3], dtype=np.uint8)
    return pixels.reshape(h, w, 3)


def lit_pixels(img: np.ndarray, box: tuple[int, int, int, int] | None = None, threshold: int = 120) -> int:
    """How many pixels in box (x, y, w, h) are clearly brighter than a dark background: text."""
    if box is not None:
        x, y, w, h = box
        img = img[y:y + h, x:x + w]
    return int((img.max(axis=2) >= threshold).sum())
