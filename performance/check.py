"""`run.py check`: validate scene files, setlists and model folders before a show."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from performance.safe_files import UnsafeFile
from performance.show.schema import ConfigError
from performance.textgen import load_model
from performance.textgen.base import ModelFileError, ServedError
from performance.textgen.cards import read_card, resolve_model_dir

SERVED_DEADLINE_S = 15.0  # the most a served model's check (test write and --probe) may take


def register_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate scenes, setlists and model folders",
                       description="Validate scene files, setlists and model folders; exit non-zero on any error.")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--probe", action="store_true",
                   help="served models: ask the server for its models and say whether it answers and serves the card's")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    # lazy: `run.py --help` imports this module; what the command needs loads when it runs
    from performance.show.config import _read_toml, load_scene, load_setlist, looks_like_setlist

    failures = 0
    cards = _Cards()  # a model many scenes name is read once per run, not once per scene
    for path in args.paths:
        try:
            if path.is_dir():
                if not (path / "model.json").exists():
                    raise ConfigError(f"{path}: not a model folder (no model.json)")
                gen = load_model(path)
                if gen.kind == "served":  # the test write and the probe together, however the server stalls
                    gen.deadline = time.monotonic() + SERVED_DEADLINE_S
                _test_write(gen, path)
                what = f"model ({gen.kind})"
                if getattr(args, "probe", False) and gen.kind == "served":
                    try:
                        what += f"; {gen.probe()}"
                    except ServedError as e:
                        raise ModelFileError(f"{path}: probe failed: {e}") from None
                # lazy: this pulls in torch (~1.5 s); only the paths that run a neural model pay for it
                from performance.textgen.neural import card_warnings

                for w in card_warnings(getattr(gen, "card", {}) or {}):
                    print(f"warn  {path}: {w}")
            else:
                if looks_like_setlist(_read_toml(path)):
                    sl = load_setlist(path)
                    scenes = [e.scene for e in sl.entries]
                    what = f"setlist ({len(sl.entries)} scenes" + (f", {len(sl.timetable)} [[at]])" if sl.timetable else ")")
                    _check_at_models(sl, cards)
                    safe = sl.install.safe_setlist if sl.install is not None else None
                    if safe:  # the fallback of a gallery is checked as thoroughly as the main setlist
                        try:
                            safe_sl = load_setlist(safe)
                            for scene in (e.scene for e in safe_sl.entries):
                                _check_models(scene, cards)
                            _check_at_models(safe_sl, cards)
                        except (ConfigError, UnsafeFile) as e:
                            raise ConfigError(f"{path}: key 'install.safe_setlist' = {safe!r}: {e}") from None
                        what += f", safe setlist {safe} ok"
                else:
                    scenes = [load_scene(path)]
                    what = "scene"
                for scene in scenes:
                    _check_models(scene, cards)
            print(f"ok    {path}: {what}")
        except (ConfigError, ModelFileError, UnsafeFile) as e:
            failures += 1
            print(f"error {e}")
        except OSError as e:
            failures += 1
            print(f"error {path}: {e.strerror}")
    return 1 if failures else 0


class _Cards:
    """read_card(resolve_model_dir(m)) once per model reference: the outcome (the card, or the
    ModelFileError) is kept, so 10,000 scenes naming one model read its card once."""

    def __init__(self) -> None:
        self._seen: dict[str, dict | Exception] = {}

    def read(self, m: str) -> dict:

        if m not in self._seen:
            try:
                self._seen[m] = read_card(resolve_model_dir(m))
            except ModelFileError as e:
                self._seen[m] = e
        got = self._seen[m]
        if isinstance(got, Exception):
            raise got
        return got


def _test_write(gen, path: Path) -> None:
    """A model that loads must also write: 32 tokens at two temperatures, each one text."""
    try:
        for t in (0.0, 1.0):
            stream = gen.start(0, "")
            try:
                for _ in range(16):
                    tok = stream.next(t)
                    if not isinstance(tok.text, str):
                        raise TypeError(f"a token is {type(tok.text).__name__}, not text")
            finally:
                if hasattr(stream, "close"):  # a served stream's open connection
                    stream.close()
    except Exception as e:
        raise ConfigError(f"{path}: loads but cannot write ({type(e).__name__}: {e})") from None


def _check_models(scene, cards: _Cards | None = None) -> None:
    """Every model a scene names must be a readable model folder."""

    cards = cards or _Cards()
    for m in scene.models:
        if m.endswith("@follow") and getattr(scene, "train", None) is not None:
            continue  # the scene's own trainer writes it
        try:
            cards.read(m)
        except ModelFileError as e:
            raise ConfigError(f"{scene.file}: key 'model' = {m!r}: {e}") from None


def _check_at_models(setlist, cards: _Cards) -> None:
    """A `[[at]]` that will switch the model names one whose card reads (the name itself was
    checked when the setlist loaded); found now, not when it fires in the middle of a show."""

    for e in setlist.timetable:
        if e.address.endswith("/model") and e.args:
            try:
                cards.read(str(e.args[0]))
            except ModelFileError as err:
                raise ConfigError(f"{setlist.file}: key 'at[{e.n}].do' = {e.do!r}: {err}") from None
