#!/usr/bin/env python3
"""Lectern: the one entry point. `python run.py --help` lists the commands."""

import sys

from performance.cli import main

if __name__ == "__main__":
    sys.exit(main())
