"""Lectern: a live engine for machine-written poetry."""

__version__ = "0.1.0"
