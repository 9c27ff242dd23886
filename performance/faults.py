"""Named fault-injection points for faults a test machine cannot produce.

A fault is active only when its name is listed in the LECTERN_FAULTS environment variable
(comma-separated), e.g. LECTERN_FAULTS=audio_device_lost,disk_full. Never active otherwise.
Known names: audio_device_lost, display_changed, disk_full, model_worker_crash, speech_worker_hang.
"""

from __future__ import annotations

import os

ENV = "LECTERN_FAULTS"


def active(name: str) -> bool:
    """True when fault `name` is switched on for this process."""
    return name in {n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()}
