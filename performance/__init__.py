"""Lectern: a live engine for machine-written poetry."""

import time as _time

__version__ = "0.1.0"

# Process start on the monotonic clock, for first_token_s (run.py imports this first).
STARTED = _time.monotonic()
