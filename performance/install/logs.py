"""Rotating logs, and transcripts kept under a disk-use cap."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_FILE = "lectern.log"
_MARK = "_lectern_handler"  # our handlers, so a second setup replaces rather than doubles them


def setup_logging(log_dir: Path | None, *, quiet: bool, max_bytes: int = 5_000_000, backups: int = 5) -> None:
    """Log to stderr (warnings and up when quiet) and, when log_dir is given, to a rotating file
    log_dir/lectern.log (max_bytes each, `backups` old files kept).

    Handlers go on the root logger, so the "lectern.*" loggers and the modules that log under their
    own __name__ all reach the file. Calling it again replaces the handlers it added before."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(fmt)
    setattr(console, _MARK, True)
    root.addHandler(console)
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            fh = logging.handlers.RotatingFileHandler(log_dir / LOG_FILE, maxBytes=max_bytes, backupCount=backups,
                                                      encoding="utf-8")
            fh.setFormatter(fmt)
            setattr(fh, _MARK, True)
            root.addHandler(fh)
        except OSError as e:
            logging.getLogger("lectern").error("cannot write logs in %s: %s (logging to stderr only)", log_dir, e)


def rotate_transcripts(folder: Path, max_bytes: int) -> list[Path]:
    """Delete the oldest transcript pairs (generated-*.txt + .jsonl, by the time in their names)
    until the folder's transcripts fit in max_bytes. The newest pair (the session being written)
    is never deleted. Returns the removed files."""
    sizes: dict[Path, int] = {}
    for f in Path(folder).glob("generated-*.*"):
        try:
            sizes[f] = f.stat().st_size
        except OSError:
            continue  # vanished meanwhile
    stems: dict[str, list[Path]] = {}
    for f in sizes:
        stems.setdefault(f.stem, []).append(f)  # x.txt and x.jsonl are one pair
    total = sum(sizes.values())
    removed: list[Path] = []
    for stem in sorted(stems)[:-1]:  # names start with the ISO time: sorted = oldest first
        if total <= max_bytes:
            break
        for f in stems[stem]:
            try:
                f.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                continue
            total -= sizes[f]
            removed.append(f)
    return removed


def console_handlers() -> list[logging.Handler]:
    """Our handlers that write to the terminal (not files)."""
    return [h for h in logging.getLogger().handlers if getattr(h, _MARK, False)
            and isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


def replace_console(handler: logging.Handler | None, previous: list[logging.Handler] | None = None
                    ) -> list[logging.Handler]:
    """Send what went to the terminal to `handler` instead (the operator view's own log lines), or
    put `previous` back. Returns the handlers it took out, for putting back later."""
    root = logging.getLogger()
    taken = console_handlers()
    for h in taken:
        root.removeHandler(h)
    for h in ([handler] if handler is not None else []) + list(previous or []):
        setattr(h, _MARK, True)
        root.addHandler(h)
    return taken
