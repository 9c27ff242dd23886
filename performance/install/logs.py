"""Rotating logs, and transcripts kept under a disk-use cap."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path


def setup_logging(log_dir: Path | None, *, quiet: bool, max_bytes: int = 5_000_000, backups: int = 5) -> None:
    """Log to stderr (warnings and up when quiet) and, for installations, to a rotating file."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(fmt)
    root.addHandler(console)
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            fh = logging.handlers.RotatingFileHandler(log_dir / "lectern.log", maxBytes=max_bytes, backupCount=backups)
            fh.setFormatter(fmt)
            root.addHandler(fh)
        except OSError as e:
            logging.getLogger("lectern").error("cannot write logs in %s: %s", log_dir, e)


def rotate_transcripts(folder: Path, max_bytes: int) -> list[Path]:
    """Delete the oldest transcript pairs until the folder's transcripts fit in max_bytes."""
    files = sorted(folder.glob("generated-*.*"), key=lambda p: p.name)
    stems: dict[str, list[Path]] = {}
    for f in files:
        stems.setdefault(f.stem, []).append(f)
    total = sum(f.stat().st_size for f in files)
    removed = []
    for stem in sorted(stems)[:-1]:  # never the session being written
        if total <= max_bytes:
            break
        for f in stems[stem]:
            total -= f.stat().st_size
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed
